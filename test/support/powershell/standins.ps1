<#
    Test fixture: stand-ins for what agent/adapters/powershell/*.ps1 call and cannot run here, as PowerShell
    functions that shadow the real commands (a function wins over a cmdlet of the same name):
    crm-standins.ps1 (the Microsoft.Crm.PowerShell snap-in), exchange-standins.ps1 (Exchange Online
    PowerShell) and windows-standins.ps1 (services, the LocalMachine\My store, remoting). They return
    objects of the real shapes (each file marks what is unverified) and work on one state:
    $global:StandIn.state, a hashtable with the keys crm, exchange and windows (see
    test/support/powershell-standins.ts for its TypeScript type), loaded by Initialize-StandIn from
    a hashtable or from the JSON file named by $env:STANDIN_STATE when this file is dot-sourced.
    Every stand-in call is recorded in $global:StandIn.calls as @{ command; args } so a test can
    assert what a script changed.
#>

function Initialize-StandIn([hashtable]$State) {
    $copy = @{ crm = @{}; exchange = @{}; windows = @{} }
    foreach ($key in $State.Keys) { $copy[$key] = $State[$key] }
    $global:StandIn = @{ state = $copy; calls = [System.Collections.Generic.List[object]]::new(); crmSnapinLoaded = $false; exchangeConnected = $false }
}

# The value of a state key, or $Default when the key is absent.
function Get-StandInValue([hashtable]$Table, [string]$Key, $Default = $null) {
    if ($null -ne $Table -and $Table.ContainsKey($Key)) { return $Table[$Key] }
    return $Default
}

# A recorded argument as JSON can show it: configuration entities as their shape, secrets hidden.
function ConvertTo-StandInValue($Value) {
    if ($null -eq $Value) { return $null }
    if ($Value -is [Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity]) {
        $attributes = $null
        if ($null -ne $Value.Attributes) { $attributes = @($Value.Attributes | ForEach-Object { [ordered]@{ Key = $_.Key; Value = ConvertTo-StandInValue $_.Value } }) }
        # , keeps a one-element list a list (PowerShell unrolls what a function returns).
        return [ordered]@{ type = $Value.GetType().FullName; LogicalName = $Value.LogicalName; Id = $Value.Id.ToString(); Attributes = $attributes }
    }
    if ($Value -is [System.Security.SecureString]) { return '[SecureString]' }
    if ($Value -is [scriptblock]) { return '[ScriptBlock]' }
    if ($Value -is [byte[]]) { return "[byte[$($Value.Length)]]" }
    if ($Value -is [switch]) { return [bool]$Value }
    if ($Value -is [guid]) { return $Value.ToString() }
    if ($Value -is [System.Collections.IDictionary]) {
        $out = [ordered]@{}
        foreach ($key in $Value.Keys) { $out[[string]$key] = ConvertTo-StandInValue $Value[$key] }
        return $out
    }
    if ($Value -is [System.Collections.IEnumerable] -and $Value -isnot [string]) { return , @($Value | ForEach-Object { ConvertTo-StandInValue $_ }) }
    if ($Value -is [bool] -or $Value -is [int] -or $Value -is [long] -or $Value -is [double]) { return $Value }
    return [string]$Value
}

function Add-StandInCall([string]$Command, [System.Collections.IDictionary]$Arguments) {
    $global:StandIn.calls.Add([ordered]@{ command = $Command; args = (ConvertTo-StandInValue $Arguments) })
}

. (Join-Path $PSScriptRoot 'crm-standins.ps1')
. (Join-Path $PSScriptRoot 'exchange-standins.ps1')
. (Join-Path $PSScriptRoot 'windows-standins.ps1')

if (-not [string]::IsNullOrEmpty($env:STANDIN_STATE)) {
    Initialize-StandIn (Get-Content -Raw -LiteralPath $env:STANDIN_STATE | ConvertFrom-Json -AsHashtable)
}
else {
    Initialize-StandIn @{}
}
