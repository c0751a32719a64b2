<#
.SYNOPSIS
    Sets EwsEnabled to $true on the listed Exchange Online mailboxes whose own EwsEnabled is
    $false (a mailbox-level $false blocks EWS for it even when the organization allows EWS).
.DESCRIPTION
    Runs on the agent's host with the ExchangeOnlineManagement module, app-only (see
    Get-EwsAccess.ps1). -Mailboxes is a comma-separated list of at most 100 addresses (the agent
    sends larger selections in several runs). Each mailbox is read (Get-CASMailbox), changed only
    when its EwsEnabled is $false (Set-CASMailbox -Identity <address> -EwsEnabled $true) and read
    back; one mailbox failing does not stop the others. Prints one JSON object:
    {"enabled":["<address>",...],"alreadyEnabled":["<address>",...],
     "failed":[{"address":"<address>","message":"<text>"},...]}
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
    [ValidatePattern('^[A-Za-z0-9._%+''-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(,[A-Za-z0-9._%+''-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+){0,99}$')]
    [string]$Mailboxes
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


try {
    Connect-Exchange
    try {
        $enabled = New-Object -TypeName 'System.Collections.Generic.List[string]'
        $already = New-Object -TypeName 'System.Collections.Generic.List[string]'
        $failed = New-Object -TypeName 'System.Collections.Generic.List[object]'
        foreach ($address in $Mailboxes.Split(',')) {
            try {
                $mailbox = Get-CASMailbox -Identity $address
                if ((Get-PropertyValue $mailbox 'EwsEnabled') -ne $false) { $already.Add($address); continue }
                Set-CASMailbox -Identity $address -EwsEnabled $true
                $readBack = Get-PropertyValue (Get-CASMailbox -Identity $address) 'EwsEnabled'
                if ($readBack -eq $false) { throw "Set-CASMailbox finished but the mailbox reads back EwsEnabled False." }
                $enabled.Add($address)
            }
            catch {
                $failed.Add([ordered]@{ address = $address; message = $_.Exception.Message })
            }
        }
        $result = [ordered]@{
            enabled = $enabled.ToArray()
            alreadyEnabled = $already.ToArray()
            failed = $failed.ToArray()
        }
        ConvertTo-Json -InputObject $result -Compress -Depth 5
    }
    finally {
        Disconnect-ExchangeOnline -Confirm:$false -ErrorAction SilentlyContinue
    }
}
catch {
    [Console]::Error.WriteLine("Set-MailboxEws: $($_.Exception.Message)")
    exit 1
}
