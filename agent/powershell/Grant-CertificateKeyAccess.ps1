<#
.SYNOPSIS
    Grants the async service account Read on the private key of the certificate with this
    thumbprint in LocalMachine\My (the "Manage Private Keys" dialog, scripted).
.DESCRIPTION
    The key container file is under %ProgramData%\Microsoft\Crypto\RSA\MachineKeys (CSP keys) or
    %ProgramData%\Microsoft\Crypto\Keys (CNG keys); Read is added with Get-Acl / Set-Acl and read
    back. Runs locally when -ComputerName is this machine, otherwise through Invoke-Command.
    Prints one JSON object: {"granted":true|false,"alreadyHad":true|false}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ComputerName,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9A-Fa-f]{40}$')]
    [string]$Thumbprint,

    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ServiceAccount
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$grant = {
    param([string]$Thumbprint, [string]$ServiceAccount)
    $ErrorActionPreference = 'Stop'

    function Get-KeyFile([System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate) {
        $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            return Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\RSA\MachineKeys\' + $key.CspKeyContainerInfo.UniqueKeyContainerName)
        }
        if ($key -is [System.Security.Cryptography.RSACng]) {
            return Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\Keys\' + $key.Key.UniqueName)
        }
        throw "The private key of $($Certificate.Thumbprint) is not an RSA key."
    }

    function Test-AccountCanRead([string]$File, [string]$Sid) {
        $read = [System.Security.AccessControl.FileSystemRights]::Read
        $acl = Get-Acl -LiteralPath $File
        foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
            if ($rule.IdentityReference.Value -eq $Sid -and
                $rule.AccessControlType -eq [System.Security.AccessControl.AccessControlType]::Allow -and
                ($rule.FileSystemRights -band $read) -eq $read) {
                return $true
            }
        }
        return $false
    }

    $certificate = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $Thumbprint) -ErrorAction SilentlyContinue
    if ($null -eq $certificate) { throw "The certificate $Thumbprint is not in LocalMachine\My." }
    if (-not $certificate.HasPrivateKey) { throw "The certificate $Thumbprint in LocalMachine\My has no private key (private key not found)." }

    $account = [System.Security.Principal.NTAccount]::new($ServiceAccount)
    $sid = $account.Translate([System.Security.Principal.SecurityIdentifier]).Value
    $file = Get-KeyFile $certificate
    if (Test-AccountCanRead -File $file -Sid $sid) {
        return @{ granted = $true; alreadyHad = $true }
    }
    $acl = Get-Acl -LiteralPath $file
    $rule = [System.Security.AccessControl.FileSystemAccessRule]::new(
        $account,
        [System.Security.AccessControl.FileSystemRights]::Read,
        [System.Security.AccessControl.AccessControlType]::Allow)
    $acl.AddAccessRule($rule)
    Set-Acl -LiteralPath $file -AclObject $acl
    return @{ granted = (Test-AccountCanRead -File $file -Sid $sid); alreadyHad = $false }
}

try {
    $thisComputer = @('localhost', '.', $env:COMPUTERNAME, [System.Net.Dns]::GetHostEntry([string]::Empty).HostName)
    if ($thisComputer -contains $ComputerName) {
        $state = & $grant $Thumbprint.ToUpperInvariant() $ServiceAccount
    }
    else {
        $state = Invoke-Command -ComputerName $ComputerName -ScriptBlock $grant -ArgumentList $Thumbprint.ToUpperInvariant(), $ServiceAccount
    }
    $result = [ordered]@{ granted = [bool]$state.granted; alreadyHad = [bool]$state.alreadyHad }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Grant-CertificateKeyAccess on ${ComputerName}: $($_.Exception.Message)")
    exit 1
}
