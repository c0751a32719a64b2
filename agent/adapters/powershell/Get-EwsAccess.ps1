<#
.SYNOPSIS
    EWS access in Exchange Online as it concerns CRM's server-side sync: the organization's
    EwsEnabled, its EWS allow-list (EwsAllowedAppIDs) and the older user-agent policy, and the
    mailboxes whose own EwsEnabled is false.
.DESCRIPTION
    Runs on the agent's host with the ExchangeOnlineManagement module, app-only:
    Connect-ExchangeOnline -AppId -CertificateThumbprint -Organization -ExchangeEnvironmentName (the
    certificate is in the agent account's certificate store). Reads only:
      Get-OrganizationConfig (EwsEnabled, EwsApplicationAccessPolicy, EwsAllowList, EwsBlockList),
      Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy (EwsAllowedAppIDs),
      Get-CASMailbox -ResultSize Unlimited -Filter 'EwsEnabled -eq $false' (one query for the whole
      tenant, not one per mailbox; EwsEnabled as a filterable property is unverified).
    Prints one JSON object:
    {"organizationEnabled":true|false|null,"allowedAppIds":["<guid>",...]|null,
     "applicationAccessPolicy":"<policy>"|null,"allowList":[...],"blockList":[...],
     "disabledMailboxes":["<address>",...],"disabledTruncated":true|false}
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
    [string]$ExchangeEnvironmentName
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

# At most this many disabled mailboxes are listed (the agent compares them with its selection).
$MaxListed = 50000

try {
    Connect-Exchange
    try {
        $config = Get-OrganizationConfig
        $policy = Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy
        $enabled = Get-PropertyValue $config 'EwsEnabled'
        $appIds = Get-PropertyValue $policy 'EwsAllowedAppIDs'
        $accessPolicy = Get-PropertyValue $config 'EwsApplicationAccessPolicy'

        $disabled = New-Object -TypeName 'System.Collections.Generic.List[string]'
        $truncated = $false
        foreach ($mailbox in @(Get-CASMailbox -ResultSize Unlimited -Filter 'EwsEnabled -eq $false')) {
            if ($disabled.Count -ge $MaxListed) { $truncated = $true; break }
            $address = [string](Get-PropertyValue $mailbox 'PrimarySmtpAddress')
            if (-not [string]::IsNullOrWhiteSpace($address)) { $disabled.Add($address.Trim()) }
        }

        $allowed = $null
        if ($null -ne $appIds) { $allowed = ConvertTo-StringList $appIds }
        $result = [ordered]@{
            organizationEnabled = $(if ($null -eq $enabled) { $null } else { [bool]$enabled })
            allowedAppIds = $allowed
            applicationAccessPolicy = $(if ($null -eq $accessPolicy -or [string]$accessPolicy -eq '') { $null } else { [string]$accessPolicy })
            allowList = ConvertTo-StringList (Get-PropertyValue $config 'EwsAllowList')
            blockList = ConvertTo-StringList (Get-PropertyValue $config 'EwsBlockList')
            disabledMailboxes = $disabled.ToArray()
            disabledTruncated = $truncated
        }
        ConvertTo-Json -InputObject $result -Compress -Depth 5
    }
    finally {
        Disconnect-ExchangeOnline -Confirm:$false -ErrorAction SilentlyContinue
    }
}
catch {
    [Console]::Error.WriteLine("Get-EwsAccess: $($_.Exception.Message)")
    exit 1
}
