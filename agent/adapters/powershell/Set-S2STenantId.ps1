<#
.SYNOPSIS
    Sets the organization's S2STenantId to the Exchange Online tenant ID (procedure step 2.4).
.DESCRIPTION
    Runs on the server with the Deployment Tools role. Finds the organization with
    Get-CrmOrganization -Name <unique name>, writes only when the value differs with
    Set-CrmAdvancedSetting -ID <org id> -ConfigurationEntityName Organization -Setting S2STenantId
    -Value <tenant id>, and reads it back with Get-CrmAdvancedSetting. Prints one JSON object:
    {"organizationId":"<guid>","tenantId":"<guid>","changed":true|false}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[A-Za-z0-9_]{1,100}$')]
    [string]$OrganizationName,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$')]
    [string]$TenantId
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

# ---- Read-CrmSettingValue: identical in Get-S2SServerSettings.ps1, Set-S2SServerSettings.ps1,
# Get-S2STenantId.ps1 and Set-S2STenantId.ps1 (test/agent/adapters/powershell/scripts.test.ts checks the copies
# are the same). Get-CrmAdvancedSetting returns a Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity,
# not the value: the value is the Value of the KeyValuePair in its .Attributes whose Key is the
# setting's name (d365-contract.md, "Deployment PowerShell output"). [string] of the entity is its
# type name, so reading the entity itself as the value compares that name with the expected value.
# $null when the setting has no pair or an empty value.
function Read-CrmSettingValue($Entity, [string]$Name) {
    if ($null -eq $Entity) { return $null }
    if ($null -eq $Entity.PSObject.Properties['Attributes']) {
        throw "Get-CrmAdvancedSetting returned a $($Entity.GetType().FullName) for $Name, not a configuration entity with Attributes."
    }
    $value = $null
    if ($null -eq $Entity.Attributes) { return $null }
    # GetEnumerator: pairs of a KeyValuePair collection, and of a dictionary too (unverified which the
    # real AttributeCollection is; foreach over a dictionary itself would see one item).
    foreach ($pair in $Entity.Attributes.GetEnumerator()) {
        if ([string]$pair.Key -eq $Name) { $value = $pair.Value }
    }
    if ($null -eq $value -or [string]::IsNullOrWhiteSpace([string]$value)) { return $null }
    return ([string]$value).Trim()
}
# ---- end Read-CrmSettingValue

function Read-OrganizationSetting([guid]$OrganizationId, [string]$Name) {
    return Read-CrmSettingValue (Get-CrmAdvancedSetting -ConfigurationEntityName Organization -Setting $Name -Id $OrganizationId) $Name
}

try {
    if (-not (Get-PSSnapin -Name Microsoft.Crm.PowerShell -ErrorAction SilentlyContinue)) {
        Add-PSSnapin Microsoft.Crm.PowerShell
    }
    $organization = Get-CrmOrganization -Name $OrganizationName
    if ($null -eq $organization) { throw "Get-CrmOrganization found no organization with the unique name '$OrganizationName'." }
    $organizationId = [guid]$organization.ID
    $wanted = ([guid]$TenantId).ToString()

    # -eq on strings ignores case: a GUID written in other letters is the same tenant.
    $current = Read-OrganizationSetting $organizationId 'S2STenantId'
    if ($null -ne $current -and $current -eq $wanted) {
        ConvertTo-Json -InputObject ([ordered]@{ organizationId = $organizationId.ToString(); tenantId = $current; changed = $false }) -Compress -Depth 5
        exit 0
    }

    Set-CrmAdvancedSetting -ID $organizationId -ConfigurationEntityName Organization -Setting S2STenantId -Value $wanted

    $readBack = Read-OrganizationSetting $organizationId 'S2STenantId'
    if ($null -eq $readBack -or $readBack -ne $wanted) {
        throw "Set-CrmAdvancedSetting finished but CRM reads back S2STenantId '$readBack' instead of '$wanted'."
    }
    ConvertTo-Json -InputObject ([ordered]@{ organizationId = $organizationId.ToString(); tenantId = $readBack; changed = $true }) -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Set-S2STenantId: $($_.Exception.Message)")
    exit 1
}
