<#
.SYNOPSIS
    The certificate with this thumbprint in LocalMachine\My on an async-service server: KeySpec,
    private key, whether the service account can read the key, another certificate with the same
    subject, and the async services.
.DESCRIPTION
    Runs locally when -ComputerName is this machine, otherwise through Invoke-Command.
    duplicateSubject: another certificate (another thumbprint) in LocalMachine\My has the subject
    -Subject, whether or not the certificate -Thumbprint is there yet (CRM would then fail with
    "private key not found"). Prints one JSON object:
    {"found","keySpec","hasPrivateKey","serviceAccountCanRead","duplicateSubject","services":[{"name","status"}]}
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
    [string]$Subject,

    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ServiceAccount
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$inspect = {
    param([string]$Thumbprint, [string]$Subject, [string]$ServiceAccount)
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

    # Another certificate with this subject, checked before the thumbprint is looked up: a plan sees a
    # same-subject certificate in the store before the new one is imported.
    $others = @(Get-ChildItem -Path 'Cert:\LocalMachine\My' | Where-Object { $_.Subject -eq $Subject -and $_.Thumbprint -ne $Thumbprint })

    $result = @{
        found                 = $false
        keySpec               = $null
        hasPrivateKey         = $false
        serviceAccountCanRead = $false
        duplicateSubject      = ($others.Count -gt 0)
        services              = $services
    }
    $certificate = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $Thumbprint) -ErrorAction SilentlyContinue
    if ($null -eq $certificate) { return $result }

    $result.found = $true
    if ($certificate.HasPrivateKey) {
        $result.hasPrivateKey = $true
        $key = Get-CertificateKeyInfo $certificate
        $result.keySpec = $key.keySpec
        $result.serviceAccountCanRead = Test-AccountCanRead -File $key.file -Account $ServiceAccount
    }
    return $result
}

try {
    $thisComputer = @('localhost', '.', $env:COMPUTERNAME, [System.Net.Dns]::GetHostEntry([string]::Empty).HostName)
    if ($thisComputer -contains $ComputerName) {
        $state = & $inspect $Thumbprint.ToUpperInvariant() $Subject $ServiceAccount
    }
    else {
        $state = Invoke-Command -ComputerName $ComputerName -ScriptBlock $inspect -ArgumentList $Thumbprint.ToUpperInvariant(), $Subject, $ServiceAccount
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
