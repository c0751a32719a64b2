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

# See Get-S2SServerSettings.ps1 (unverified output type of Get-CrmAdvancedSetting).
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
