<#
.SYNOPSIS
    The certificate CRM has registered as S2STokenIssuer (Get-CrmCertificate).
.DESCRIPTION
    Runs on the server with the Deployment Tools role. Prints one JSON object:
    {"registered":true|false,"derBase64":"<base64 DER>"|null}
#>
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

try {
    if (-not (Get-PSSnapin -Name Microsoft.Crm.PowerShell -ErrorAction SilentlyContinue)) {
        Add-PSSnapin Microsoft.Crm.PowerShell
    }
    $issuer = Get-CrmCertificate | Where-Object { [string]$_.CertificateType -eq 'S2STokenIssuer' } | Select-Object -First 1
    $result = [ordered]@{ registered = $false; derBase64 = $null }
    if ($null -ne $issuer -and -not [string]::IsNullOrEmpty([string]$issuer.Data)) {
        # Data is the base64 public certificate; parse it once so a damaged value fails here, not later.
        $der = [Convert]::FromBase64String([string]$issuer.Data)
        $null = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($der)
        $result.registered = $true
        $result.derBase64 = [Convert]::ToBase64String($der)
    }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Get-S2SCertificate: $($_.Exception.Message)")
    exit 1
}
