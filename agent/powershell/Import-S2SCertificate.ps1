<#
.SYNOPSIS
    Imports the S2S certificate's PFX into LocalMachine\My of an async-service server with
    KeySpec 1: certutil -importpfx <file> AT_KEYEXCHANGE.
.DESCRIPTION
    The PFX password comes from the environment variable SETUP_PFX_PASSWORD (never the command
    line of this script). When -ComputerName is another server, the PFX is copied there through
    a PowerShell remoting session to a temporary file, imported, and the file deleted.
    Refuses when the store already holds another certificate with the same subject (CRM would
    then fail with "private key not found"). Prints one JSON object:
    {"thumbprint":"<40 hex>","keySpec":1,"alreadyPresent":true|false}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ComputerName,

    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$PfxPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$import = {
    param([string]$File, [System.Security.SecureString]$Password, [string]$Thumbprint, [string]$Subject)
    $ErrorActionPreference = 'Stop'

    function Get-KeySpec([System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate) {
        if (-not $Certificate.HasPrivateKey) { return $null }
        $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            if ($key.CspKeyContainerInfo.KeyNumber -eq [System.Security.Cryptography.KeyNumber]::Exchange) { return 1 }
            return 2
        }
        return 0
    }

    $path = 'Cert:\LocalMachine\My\' + $Thumbprint
    $existing = Get-Item -LiteralPath $path -ErrorAction SilentlyContinue
    if ($null -ne $existing -and (Get-KeySpec $existing) -eq 1) {
        return @{ keySpec = 1; alreadyPresent = $true }
    }
    $others = @(Get-ChildItem -Path 'Cert:\LocalMachine\My' | Where-Object { $_.Subject -eq $Subject -and $_.Thumbprint -ne $Thumbprint })
    if ($others.Count -gt 0) {
        throw "LocalMachine\My already holds another certificate with the subject '$Subject' (thumbprint $($others[0].Thumbprint)): CRM would not find the right private key (private key not found). Remove that certificate first."
    }

    $plain = ([System.Net.NetworkCredential]::new([string]::Empty, $Password)).Password
    # certutil writes its errors on stdout and stderr; native stderr must not become a terminating error here.
    $ErrorActionPreference = 'Continue'
    $output = & certutil.exe -importpfx -p $plain $File AT_KEYEXCHANGE 2>&1
    $exitCode = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    $plain = $null
    if ($exitCode -ne 0) {
        $text = (($output | ForEach-Object { [string]$_ }) -join ' ').Trim()
        throw "certutil -importpfx failed (exit code $exitCode): $text"
    }
    $imported = Get-Item -LiteralPath $path
    return @{ keySpec = (Get-KeySpec $imported); alreadyPresent = $false }
}

try {
    if ([string]::IsNullOrEmpty($env:SETUP_PFX_PASSWORD)) {
        throw 'SETUP_PFX_PASSWORD is not set: the agent passes the PFX password in this environment variable.'
    }
    $password = ConvertTo-SecureString -String $env:SETUP_PFX_PASSWORD -AsPlainText -Force
    Remove-Item -Path 'Env:SETUP_PFX_PASSWORD'

    $pfxFile = (Resolve-Path -LiteralPath $PfxPath).ProviderPath
    $pfx = Get-PfxData -FilePath $pfxFile -Password $password
    $certificate = @($pfx.EndEntityCertificates)[0]
    if ($null -eq $certificate) { throw "The PFX $PfxPath holds no end-entity certificate." }
    $thumbprint = $certificate.Thumbprint.ToUpperInvariant()
    $subject = $certificate.Subject

    $thisComputer = @('localhost', '.', $env:COMPUTERNAME, [System.Net.Dns]::GetHostEntry([string]::Empty).HostName)
    if ($thisComputer -contains $ComputerName) {
        $state = & $import $pfxFile $password $thumbprint $subject
    }
    else {
        $session = New-PSSession -ComputerName $ComputerName
        try {
            $remoteFile = Invoke-Command -Session $session -ScriptBlock {
                Join-Path -Path ([System.IO.Path]::GetTempPath()) -ChildPath ('setup-s2s-' + [guid]::NewGuid().ToString('N') + '.pfx')
            }
            Copy-Item -LiteralPath $pfxFile -Destination $remoteFile -ToSession $session
            try {
                $state = Invoke-Command -Session $session -ScriptBlock $import -ArgumentList $remoteFile, $password, $thumbprint, $subject
            }
            finally {
                Invoke-Command -Session $session -ScriptBlock {
                    param([string]$File)
                    Remove-Item -LiteralPath $File -Force -ErrorAction SilentlyContinue
                } -ArgumentList $remoteFile
            }
        }
        finally {
            Remove-PSSession -Session $session
        }
    }
    $keySpec = $null
    if ($null -ne $state.keySpec) { $keySpec = [int]$state.keySpec }
    $result = [ordered]@{ thumbprint = $thumbprint; keySpec = $keySpec; alreadyPresent = [bool]$state.alreadyPresent }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Import-S2SCertificate on ${ComputerName}: $($_.Exception.Message)")
    exit 1
}
