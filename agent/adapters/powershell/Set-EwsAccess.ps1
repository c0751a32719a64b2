<#
.SYNOPSIS
    Lets CRM's server-side sync use EWS in Exchange Online: adds the app to the organization's EWS
    allow-list (EwsAllowedAppIDs) and sets the organization's EwsEnabled to $true, each only when it
    is not so yet, then reads both back.
.DESCRIPTION
    Runs on the agent's host with the ExchangeOnlineManagement module, app-only (see
    Get-EwsAccess.ps1). EwsAllowedAppIDs is the whole list: it is read, merged and written
    (Set-OrganizationConfig -EwsAllowedAppIDs <every id>), so the apps already allowed stay allowed.
    Exchange Online can take up to 24 hours to apply a change: the read-back shows the setting, not
    yet its effect. Prints one JSON object:
    {"organizationEnabled":true,"allowedAppIds":["<guid>",...],"changed":["EwsAllowedAppIDs","EwsEnabled"]}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$')]
    [string]$AppId,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9A-Fa-f]{40}$')]
    [string]$CertificateThumbprint,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$')]
    [string]$Organization,

    [Parameter(Mandatory = $true)]
    [ValidateSet('O365Default', 'O365USGovGCCHigh', 'O365USGovDoD')]
    [string]$ExchangeEnvironmentName,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$')]
    [string]$AllowAppId
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

# ---- Exchange Online helpers: identical in Get-EwsAccess, Set-EwsAccess and Set-MailboxEws (a test keeps them so) ----
# A property of a cmdlet's output object, or $null when that object has no such property or it is
# unset (the properties differ between module versions; Set-StrictMode would throw on a missing one).
function Get-PropertyValue([object]$InputObject, [string]$Name) {
    if ($null -eq $InputObject) { return $null }
    $property = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $property -or $null -eq $property.Value) { return $null }
    # -NoEnumerate: an empty list stays an empty list (a plain return would unroll it to $null).
    Write-Output -NoEnumerate $property.Value
}

# A multi-valued property as a string array (empty when unset).
function ConvertTo-StringList([object]$Value) {
    $list = New-Object -TypeName 'System.Collections.Generic.List[string]'
    if ($null -ne $Value) {
        foreach ($item in @($Value)) {
            if ($null -ne $item -and -not [string]::IsNullOrWhiteSpace([string]$item)) { $list.Add(([string]$item).Trim()) }
        }
    }
    return ,$list.ToArray()
}

# App-only: the app registration's certificate in the store of the agent's account.
function Connect-Exchange {
    Import-Module ExchangeOnlineManagement
    Connect-ExchangeOnline -AppId $AppId -CertificateThumbprint $CertificateThumbprint -Organization $Organization -ExchangeEnvironmentName $ExchangeEnvironmentName -ShowBanner:$false
}
# ---- end Exchange Online helpers


function Read-EwsSettings {
    $config = Get-OrganizationConfig
    $policy = Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy
    $enabled = Get-PropertyValue $config 'EwsEnabled'
    return @{
        enabled = $(if ($null -eq $enabled) { $null } else { [bool]$enabled })
        appIds = ConvertTo-StringList (Get-PropertyValue $policy 'EwsAllowedAppIDs')
    }
}

# -contains on strings ignores case: a GUID in other letters is the same app.
try {
    Connect-Exchange
    try {
        $before = Read-EwsSettings
        $changed = New-Object -TypeName 'System.Collections.Generic.List[string]'
        if (-not ($before.appIds -contains $AllowAppId)) {
            $merged = @($before.appIds) + @($AllowAppId.ToLowerInvariant())
            Set-OrganizationConfig -EwsAllowedAppIDs $merged
            $changed.Add('EwsAllowedAppIDs')
        }
        if ($before.enabled -ne $true) {
            Set-OrganizationConfig -EwsEnabled $true
            $changed.Add('EwsEnabled')
        }

        $after = Read-EwsSettings
        if ($after.enabled -ne $true -or -not ($after.appIds -contains $AllowAppId)) {
            throw "Set-OrganizationConfig finished but Exchange Online reads back EwsEnabled '$($after.enabled)' and EwsAllowedAppIDs '$($after.appIds -join ',')'."
        }
        $result = [ordered]@{
            organizationEnabled = $after.enabled
            allowedAppIds = $after.appIds
            changed = $changed.ToArray()
        }
        ConvertTo-Json -InputObject $result -Compress -Depth 5
    }
    finally {
        Disconnect-ExchangeOnline -Confirm:$false -ErrorAction SilentlyContinue
    }
}
catch {
    [Console]::Error.WriteLine("Set-EwsAccess: $($_.Exception.Message)")
    exit 1
}
