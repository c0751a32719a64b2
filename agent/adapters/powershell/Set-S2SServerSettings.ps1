<#
.SYNOPSIS
    Sets the S2S server settings S2SDefaultAuthorizationServerPrincipalId and
    S2SDefaultAuthorizationServerMetadataUrl (Set-CrmAdvancedSetting -Entity, a ServerSettings
    configuration entity, as Microsoft's ConfigureCrmServerSideSync.ps1 does).
.DESCRIPTION
    Runs on the server with the Deployment Tools role. Writes only when a value differs. Prints
    one JSON object: {"changed":true|false}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$')]
    [string]$PrincipalId,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^https://')]
    [string]$MetadataUrl
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

function Read-ServerSetting([string]$Name) {
    return Read-CrmSettingValue (Get-CrmAdvancedSetting -ConfigurationEntityName ServerSettings -Setting $Name) $Name
}

try {
    if (-not (Get-PSSnapin -Name Microsoft.Crm.PowerShell -ErrorAction SilentlyContinue)) {
        Add-PSSnapin Microsoft.Crm.PowerShell
    }
    $currentPrincipal = Read-ServerSetting 'S2SDefaultAuthorizationServerPrincipalId'
    $currentMetadata = Read-ServerSetting 'S2SDefaultAuthorizationServerMetadataUrl'
    if ($currentPrincipal -eq $PrincipalId -and $currentMetadata -eq $MetadataUrl) {
        ConvertTo-Json -InputObject ([ordered]@{ changed = $false }) -Compress -Depth 5
        exit 0
    }

    $setting = New-Object -TypeName 'Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity'
    $setting.LogicalName = 'ServerSettings'
    $setting.Attributes = New-Object -TypeName 'Microsoft.Xrm.Sdk.Deployment.AttributeCollection'
    $setting.Attributes.Add([System.Collections.Generic.KeyValuePair[string, object]]::new('S2SDefaultAuthorizationServerPrincipalId', $PrincipalId))
    $setting.Attributes.Add([System.Collections.Generic.KeyValuePair[string, object]]::new('S2SDefaultAuthorizationServerMetadataUrl', $MetadataUrl))
    Set-CrmAdvancedSetting -Entity $setting

    $newPrincipal = Read-ServerSetting 'S2SDefaultAuthorizationServerPrincipalId'
    $newMetadata = Read-ServerSetting 'S2SDefaultAuthorizationServerMetadataUrl'
    if ($newPrincipal -ne $PrincipalId -or $newMetadata -ne $MetadataUrl) {
        throw "Set-CrmAdvancedSetting finished but CRM reads back principal '$newPrincipal' and metadata URL '$newMetadata'."
    }
    ConvertTo-Json -InputObject ([ordered]@{ changed = $true }) -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Set-S2SServerSettings: $($_.Exception.Message)")
    exit 1
}
