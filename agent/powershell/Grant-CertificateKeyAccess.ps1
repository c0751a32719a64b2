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

    # ---- Get-CertificateKeyInfo: identical in Get-MachineCertificate.ps1, Grant-CertificateKeyAccess.ps1
    # and Import-S2SCertificate.ps1 (a remote script block cannot dot-source a local file; the test
    # test/agent/powershell-scripts.test.ts checks the three copies are the same).
    # The KeySpec and the key container file of a certificate's private key, as CRM sees them.
    # Windows PowerShell 5.1 runs on .NET Framework 4.x, where
    # RSACertificateExtensions.GetRSAPrivateKey() opens every key through CNG
    # (CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG), a legacy CSP key too: it returns RSACng and a KeySpec 1 key
    # would read as KeySpec 0, its file looked for under Crypto\Keys (dotnet/corefx#3502).
    # X509Certificate2.PrivateKey opens CSP keys as RSACryptoServiceProvider: KeyNumber is the KeySpec
    # (Exchange 1, Signature 2) and the file is Crypto\RSA\MachineKeys\<UniqueKeyContainerName>. For a
    # CNG key it throws ("Invalid provider type specified"): KeySpec 0, the file
    # Crypto\Keys\<RSACng.Key.UniqueName> through GetRSAPrivateKey().
    function Get-CertificateKeyInfo([System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate) {
        if (-not $Certificate.HasPrivateKey) { return $null }
        $csp = $null
        try { $csp = $Certificate.PrivateKey } catch { $csp = $null }
        if ($csp -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $container = $csp.CspKeyContainerInfo
            $keySpec = 2
            if ($container.KeyNumber -eq [System.Security.Cryptography.KeyNumber]::Exchange) { $keySpec = 1 }
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\RSA\MachineKeys\' + $container.UniqueKeyContainerName)
            return @{ keySpec = $keySpec; file = $file }
        }
        $cng = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($cng -is [System.Security.Cryptography.RSACng]) {
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\Keys\' + $cng.Key.UniqueName)
            return @{ keySpec = 0; file = $file }
        }
        throw "The private key of $($Certificate.Thumbprint) is not an RSA key."
    }
    # ---- end Get-CertificateKeyInfo

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
    $file = (Get-CertificateKeyInfo $certificate).file
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
