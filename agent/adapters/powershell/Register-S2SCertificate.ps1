<#
.SYNOPSIS
    Registers the public certificate as CRM's S2S token issuer (Set-CrmCertificate).
.DESCRIPTION
    Runs on the server with the Deployment Tools role, with the public certificate (.cer) the
    agent wrote. Reads the registration back with Get-CrmCertificate. Prints one JSON object:
    {"thumbprint":"<40 hex>"}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$CerPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

try {
    if (-not (Get-PSSnapin -Name Microsoft.Crm.PowerShell -ErrorAction SilentlyContinue)) {
        Add-PSSnapin Microsoft.Crm.PowerShell
    }
    $cerFile = (Resolve-Path -LiteralPath $CerPath).ProviderPath
    $certificate = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new($cerFile)
    $expected = $certificate.Thumbprint.ToUpperInvariant()

    Set-CrmCertificate -CertificateType S2STokenIssuer -StoreName My -StoreLocation LocalMachine -StoreFindType FindBySubjectDistinguishedName -DataFile $cerFile

    $issuer = Get-CrmCertificate | Where-Object { [string]$_.CertificateType -eq 'S2STokenIssuer' } | Select-Object -First 1
    if ($null -eq $issuer) { throw 'Set-CrmCertificate finished but Get-CrmCertificate lists no S2STokenIssuer.' }
    $registered = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new([Convert]::FromBase64String([string]$issuer.Data))
    $thumbprint = $registered.Thumbprint.ToUpperInvariant()
    if ($thumbprint -ne $expected) {
        throw "Set-CrmCertificate finished but CRM has $thumbprint registered as S2STokenIssuer, not $expected."
    }
    ConvertTo-Json -InputObject ([ordered]@{ thumbprint = $thumbprint }) -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Register-S2SCertificate: $($_.Exception.Message)")
    exit 1
}
