<#
.SYNOPSIS
    The two S2S server settings as CRM has them (Get-CrmAdvancedSetting, ServerSettings).
.DESCRIPTION
    Runs on the server with the Deployment Tools role. Prints one JSON object:
    {"principalId":"<guid>"|null,"metadataUrl":"<url>"|null}
#>
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

# Get-CrmAdvancedSetting returns the value; should a version return a setting object instead,
# its Value property is taken (unverified: no Microsoft document shows the output type).
function Read-ServerSetting([string]$Name) {
    $value = Get-CrmAdvancedSetting -ConfigurationEntityName ServerSettings -Setting $Name
    if ($null -ne $value -and $null -ne $value.PSObject.Properties['Value']) { $value = $value.Value }
    if ($null -eq $value -or [string]::IsNullOrWhiteSpace([string]$value)) { return $null }
    return ([string]$value).Trim()
}

try {
    if (-not (Get-PSSnapin -Name Microsoft.Crm.PowerShell -ErrorAction SilentlyContinue)) {
        Add-PSSnapin Microsoft.Crm.PowerShell
    }
    $result = [ordered]@{
        principalId = Read-ServerSetting 'S2SDefaultAuthorizationServerPrincipalId'
        metadataUrl = Read-ServerSetting 'S2SDefaultAuthorizationServerMetadataUrl'
    }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Get-S2SServerSettings: $($_.Exception.Message)")
    exit 1
}
