<#
.SYNOPSIS
    The organization's S2STenantId (the Exchange Online tenant ID server-side sync uses).
.DESCRIPTION
    Runs on the server with the Deployment Tools role. Finds the organization with
    Get-CrmOrganization -Name <unique name>, then reads Get-CrmAdvancedSetting
    -ConfigurationEntityName Organization -Setting S2STenantId -Id <org id>. Prints one JSON object:
    {"organizationId":"<guid>","tenantId":"<guid>"|null}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[A-Za-z0-9_]{1,100}$')]
    [string]$OrganizationName
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

# See Get-S2SServerSettings.ps1 (unverified output type of Get-CrmAdvancedSetting).
function Read-OrganizationSetting([guid]$OrganizationId, [string]$Name) {
    $value = Get-CrmAdvancedSetting -ConfigurationEntityName Organization -Setting $Name -Id $OrganizationId
    if ($null -ne $value -and $null -ne $value.PSObject.Properties['Value']) { $value = $value.Value }
    if ($null -eq $value -or [string]::IsNullOrWhiteSpace([string]$value)) { return $null }
    return ([string]$value).Trim()
}

try {
    if (-not (Get-PSSnapin -Name Microsoft.Crm.PowerShell -ErrorAction SilentlyContinue)) {
        Add-PSSnapin Microsoft.Crm.PowerShell
    }
    $organization = Get-CrmOrganization -Name $OrganizationName
    if ($null -eq $organization) { throw "Get-CrmOrganization found no organization with the unique name '$OrganizationName'." }
    $organizationId = [guid]$organization.ID
    $result = [ordered]@{
        organizationId = $organizationId.ToString()
        tenantId = Read-OrganizationSetting $organizationId 'S2STenantId'
    }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Get-S2STenantId: $($_.Exception.Message)")
    exit 1
}
