<#
.SYNOPSIS
    The certificate with this thumbprint in LocalMachine\My on an async-service server: KeySpec,
    private key, whether the service account can read the key, another certificate with the same
    subject, and the async services.
.DESCRIPTION
    Runs locally when -ComputerName is this machine, otherwise through Invoke-Command. Prints one
    JSON object: {"found","keySpec","hasPrivateKey","serviceAccountCanRead","duplicateSubject","services":[{"name","status"}]}
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

$inspect = {
    param([string]$Thumbprint, [string]$ServiceAccount)
    $ErrorActionPreference = 'Stop'

    # KeySpec and key container file: CSP keys (RSACryptoServiceProvider) live in
    # Crypto\RSA\MachineKeys with KeyNumber Exchange (1) or Signature (2); CNG keys (RSACng,
    # KeySpec 0) in Crypto\Keys.
    function Get-PrivateKeyInfo([System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate) {
        $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $container = $key.CspKeyContainerInfo
            $keySpec = 2
            if ($container.KeyNumber -eq [System.Security.Cryptography.KeyNumber]::Exchange) { $keySpec = 1 }
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\RSA\MachineKeys\' + $container.UniqueKeyContainerName)
            return @{ keySpec = $keySpec; file = $file }
        }
        if ($key -is [System.Security.Cryptography.RSACng]) {
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\Keys\' + $key.Key.UniqueName)
            return @{ keySpec = 0; file = $file }
        }
        throw "The private key of $($Certificate.Thumbprint) is not an RSA key."
    }

    function Test-AccountCanRead([string]$File, [string]$Account) {
        $sid = ([System.Security.Principal.NTAccount]::new($Account)).Translate([System.Security.Principal.SecurityIdentifier]).Value
        $read = [System.Security.AccessControl.FileSystemRights]::Read
        $acl = Get-Acl -LiteralPath $File
        foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
            if ($rule.IdentityReference.Value -eq $sid -and
                $rule.AccessControlType -eq [System.Security.AccessControl.AccessControlType]::Allow -and
                ($rule.FileSystemRights -band $read) -eq $read) {
                return $true
            }
        }
        return $false
    }

    $services = @()
    foreach ($name in @('MSCRMAsyncService', 'MSCRMAsyncService$maintenance')) {
        $service = Get-Service -Name $name -ErrorAction SilentlyContinue
        $status = 'NotInstalled'
        if ($null -ne $service) { $status = [string]$service.Status }
        $services += @{ name = $name; status = $status }
    }

    $result = @{
        found                 = $false
        keySpec               = $null
        hasPrivateKey         = $false
        serviceAccountCanRead = $false
        duplicateSubject      = $false
        services              = $services
    }
    $certificate = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $Thumbprint) -ErrorAction SilentlyContinue
    if ($null -eq $certificate) { return $result }

    $result.found = $true
    $others = @(Get-ChildItem -Path 'Cert:\LocalMachine\My' | Where-Object { $_.Subject -eq $certificate.Subject -and $_.Thumbprint -ne $certificate.Thumbprint })
    $result.duplicateSubject = $others.Count -gt 0
    if ($certificate.HasPrivateKey) {
        $result.hasPrivateKey = $true
        $key = Get-PrivateKeyInfo $certificate
        $result.keySpec = $key.keySpec
        $result.serviceAccountCanRead = Test-AccountCanRead -File $key.file -Account $ServiceAccount
    }
    return $result
}

try {
    $thisComputer = @('localhost', '.', $env:COMPUTERNAME, [System.Net.Dns]::GetHostEntry([string]::Empty).HostName)
    if ($thisComputer -contains $ComputerName) {
        $state = & $inspect $Thumbprint.ToUpperInvariant() $ServiceAccount
    }
    else {
        $state = Invoke-Command -ComputerName $ComputerName -ScriptBlock $inspect -ArgumentList $Thumbprint.ToUpperInvariant(), $ServiceAccount
    }
    $keySpec = $null
    if ($null -ne $state.keySpec) { $keySpec = [int]$state.keySpec }
    $result = [ordered]@{
        found                 = [bool]$state.found
        keySpec               = $keySpec
        hasPrivateKey         = [bool]$state.hasPrivateKey
        serviceAccountCanRead = [bool]$state.serviceAccountCanRead
        duplicateSubject      = [bool]$state.duplicateSubject
        services              = @($state.services | ForEach-Object { [ordered]@{ name = [string]$_.name; status = [string]$_.status } })
    }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Get-MachineCertificate on ${ComputerName}: $($_.Exception.Message)")
    exit 1
}
