<#
    Test fixture (dot-sourced by standins.ps1): Exchange Online PowerShell (module
    ExchangeOnlineManagement), on $global:StandIn.state.exchange:
      moduleInstalled (default $true); connectError: a message Connect-ExchangeOnline fails with;
      organizationConfig: @{ EwsEnabled ($true/$false/$null); EwsApplicationAccessPolicy
      (EnforceAllowList/EnforceBlockList/$null); EwsAllowList; EwsBlockList; EwsAllowedAppIDs };
      mailboxes: [@{ Identity; PrimarySmtpAddress; EwsEnabled ($null = inherit) }].
    Shadows Get-Module -ListAvailable / Import-Module for ExchangeOnlineManagement (other modules go
    to the real cmdlets), Connect-ExchangeOnline, Disconnect-ExchangeOnline, Get-/Set-OrganizationConfig
    and Get-/Set-CASMailbox (d365-contract.md, "EWS access in Exchange Online"). The EXO cmdlets fail
    before Connect-ExchangeOnline, as they do not exist until then.
    Unverified: the multi-valued properties are string arrays here (the real ones are deserialized
    MultiValuedProperty collections: enumerate them, do not rely on their type); EwsAllowedAppIDs is
    absent from Get-OrganizationConfig's object without -RetrieveEwsOperationAccessPolicy (here:
    the property does not exist, so a strict-mode script that forgets the switch fails); the
    @{ Add = ...; Remove = ... } form of the multi-valued parameters; the errors' wording;
    Disconnect-ExchangeOnline asking for confirmation (ConfirmImpact High) unless -Confirm:$false.
#>

# The module version the stand-in claims (any 3.x has the EWS cmdlets; unverified which version added EwsAllowedAppIDs).
function Get-StandInExchangeModuleVersion { return [version]'3.9.0' }

function Get-ExchangeState {
    $exchange = $global:StandIn.state.exchange
    if (-not $exchange.ContainsKey('organizationConfig') -or $null -eq $exchange.organizationConfig) { $exchange.organizationConfig = @{} }
    $config = $exchange.organizationConfig
    foreach ($key in @('EwsEnabled', 'EwsApplicationAccessPolicy')) { if (-not $config.ContainsKey($key)) { $config[$key] = $null } }
    foreach ($key in @('EwsAllowList', 'EwsBlockList', 'EwsAllowedAppIDs')) { if (-not $config.ContainsKey($key) -or $null -eq $config[$key]) { $config[$key] = @() } }
    if (-not $exchange.ContainsKey('mailboxes') -or $null -eq $exchange.mailboxes) { $exchange.mailboxes = @() }
    return $exchange
}

function Assert-ExchangeConnected([string]$Command) {
    if (-not $global:StandIn.exchangeConnected) {
        throw [System.Management.Automation.CommandNotFoundException]::new("The term '$Command' is not recognized as a name of a cmdlet, function, script file, or executable program (Connect-ExchangeOnline first).")
    }
}

function Get-Module {
    [CmdletBinding()]
    param([Parameter(Position = 0)][string[]]$Name, [switch]$ListAvailable, [switch]$All)
    if ($null -eq $Name -or $Name -notcontains 'ExchangeOnlineManagement') { return Microsoft.PowerShell.Core\Get-Module @PSBoundParameters }
    $installed = [bool](Get-StandInValue (Get-ExchangeState) 'moduleInstalled' $true)
    if (($ListAvailable -and $installed) -or $global:StandIn.ContainsKey('exchangeModuleImported')) {
        return [pscustomobject]@{ Name = 'ExchangeOnlineManagement'; Version = (Get-StandInExchangeModuleVersion); ModuleType = 'Script' }
    }
}

function Import-Module {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, Position = 0)][string[]]$Name, [version]$MinimumVersion, [switch]$Force)
    if ($Name -notcontains 'ExchangeOnlineManagement') { return Microsoft.PowerShell.Core\Import-Module @PSBoundParameters }
    Add-StandInCall 'Import-Module' $PSBoundParameters
    if (-not [bool](Get-StandInValue (Get-ExchangeState) 'moduleInstalled' $true)) {
        throw "The specified module 'ExchangeOnlineManagement' was not loaded because no valid module file was found in any module directory."
    }
    if ($null -ne $MinimumVersion -and $MinimumVersion -gt (Get-StandInExchangeModuleVersion)) {
        throw "The specified module 'ExchangeOnlineManagement' with version '$MinimumVersion' was not loaded because no valid module file was found in any module directory."
    }
    $global:StandIn.exchangeModuleImported = $true
}

function Connect-ExchangeOnline {
    [CmdletBinding()]
    param(
        [string]$AppId,
        [string]$CertificateThumbprint,
        [string]$Organization,
        [ValidateSet('O365Default', 'O365GermanyCloud', 'O365China', 'O365USGovGCCHigh', 'O365USGovDoD')][string]$ExchangeEnvironmentName = 'O365Default',
        [string[]]$CommandName,
        [switch]$ShowBanner,
        [bool]$ShowProgress = $true,
        [switch]$SkipLoadingFormatData
    )
    Add-StandInCall 'Connect-ExchangeOnline' $PSBoundParameters
    $exchange = Get-ExchangeState
    if (-not [bool](Get-StandInValue $exchange 'moduleInstalled' $true)) {
        throw [System.Management.Automation.CommandNotFoundException]::new("The term 'Connect-ExchangeOnline' is not recognized as a name of a cmdlet, function, script file, or executable program.")
    }
    $failure = Get-StandInValue $exchange 'connectError' $null
    if ($null -ne $failure) { throw [string]$failure }
    if ([string]::IsNullOrEmpty($AppId) -or [string]::IsNullOrEmpty($CertificateThumbprint) -or [string]::IsNullOrEmpty($Organization)) {
        throw 'stand-in Connect-ExchangeOnline: app-only sign-in needs -AppId, -CertificateThumbprint and -Organization.'
    }
    $global:StandIn.exchangeConnected = $true
}

function Disconnect-ExchangeOnline {
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'High')]
    param()
    if (-not $PSCmdlet.ShouldProcess('the Exchange Online session', 'Disconnect')) { return }
    Add-StandInCall 'Disconnect-ExchangeOnline' @{}
    $global:StandIn.exchangeConnected = $false
}

function Get-OrganizationConfig {
    [CmdletBinding()]
    param([switch]$RetrieveEwsOperationAccessPolicy)
    Assert-ExchangeConnected 'Get-OrganizationConfig'
    Add-StandInCall 'Get-OrganizationConfig' $PSBoundParameters
    $config = (Get-ExchangeState).organizationConfig
    $result = [ordered]@{
        Identity                   = 'contoso.onmicrosoft.com'
        Name                       = 'contoso.onmicrosoft.com'
        EwsEnabled                 = $config.EwsEnabled
        EwsApplicationAccessPolicy = $config.EwsApplicationAccessPolicy
        EwsAllowList               = [string[]]@($config.EwsAllowList)
        EwsBlockList               = [string[]]@($config.EwsBlockList)
    }
    if ($RetrieveEwsOperationAccessPolicy) { $result.EwsAllowedAppIDs = [string[]]@($config.EwsAllowedAppIDs) }
    return [pscustomobject]$result
}

# A multi-valued parameter's new value: the whole list, or @{ Add = ...; Remove = ... } on the current one.
function Get-StandInMultiValue($Current, $Given) {
    if ($Given -is [System.Collections.IDictionary]) {
        $list = [System.Collections.Generic.List[string]]::new()
        foreach ($item in @($Current)) { $list.Add([string]$item) }
        foreach ($item in @(Get-StandInValue $Given 'Add' @())) { if (-not $list.Contains([string]$item)) { $list.Add([string]$item) } }
        foreach ($item in @(Get-StandInValue $Given 'Remove' @())) { $null = $list.Remove([string]$item) }
        return [string[]]$list.ToArray()
    }
    if ($null -eq $Given) { return [string[]]@() }
    return [string[]]@($Given)
}

function Set-OrganizationConfig {
    [CmdletBinding()]
    param(
        [System.Nullable[bool]]$EwsEnabled,
        [AllowNull()][string]$EwsApplicationAccessPolicy,
        [AllowNull()][object]$EwsAllowList,
        [AllowNull()][object]$EwsBlockList,
        [AllowNull()][object]$EwsAllowedAppIDs
    )
    Assert-ExchangeConnected 'Set-OrganizationConfig'
    Add-StandInCall 'Set-OrganizationConfig' $PSBoundParameters
    $config = (Get-ExchangeState).organizationConfig
    if ($PSBoundParameters.ContainsKey('EwsEnabled')) { $config.EwsEnabled = $EwsEnabled }
    if ($PSBoundParameters.ContainsKey('EwsApplicationAccessPolicy')) {
        if (-not [string]::IsNullOrEmpty($EwsApplicationAccessPolicy) -and @('EnforceAllowList', 'EnforceBlockList') -notcontains $EwsApplicationAccessPolicy) {
            throw "Cannot bind parameter 'EwsApplicationAccessPolicy': '$EwsApplicationAccessPolicy' is not EnforceAllowList or EnforceBlockList."
        }
        $config.EwsApplicationAccessPolicy = $EwsApplicationAccessPolicy
    }
    foreach ($list in @('EwsAllowList', 'EwsBlockList', 'EwsAllowedAppIDs')) {
        if ($PSBoundParameters.ContainsKey($list)) { $config[$list] = Get-StandInMultiValue $config[$list] $PSBoundParameters[$list] }
    }
}

function Find-StandInMailbox([string]$Identity) {
    foreach ($mailbox in @((Get-ExchangeState).mailboxes)) {
        if ([string]$mailbox.Identity -eq $Identity -or [string]$mailbox.PrimarySmtpAddress -eq $Identity) { return $mailbox }
    }
    return $null
}

# The OPATH filters the stand-in understands: EwsEnabled -eq $true/$false (anything else fails, so a
# script that relies on another filter is noticed here). Whether Exchange Online accepts EwsEnabled in
# -Filter is unverified.
function Test-StandInCasFilter([string]$Filter, $Mailbox) {
    if ($Filter -notmatch '^\s*EwsEnabled\s+-eq\s+\$(true|false)\s*$') { throw "stand-in Get-CASMailbox: the filter '$Filter' is not one the stand-in understands (EwsEnabled -eq `$true|`$false)." }
    $wanted = $Matches[1] -eq 'true'
    return (Get-StandInValue $Mailbox 'EwsEnabled' $null) -eq $wanted
}

function Get-CASMailbox {
    [CmdletBinding()]
    param([Parameter(Position = 0)][string]$Identity, [object]$ResultSize, [string]$Filter)
    Assert-ExchangeConnected 'Get-CASMailbox'
    Add-StandInCall 'Get-CASMailbox' $PSBoundParameters
    $mailboxes = @((Get-ExchangeState).mailboxes)
    if ($PSBoundParameters.ContainsKey('Filter')) { $mailboxes = @($mailboxes | Where-Object { Test-StandInCasFilter $Filter $_ }) }
    if ($PSBoundParameters.ContainsKey('Identity')) {
        $one = Find-StandInMailbox $Identity
        if ($null -eq $one) {
            Write-Error -Message "The operation couldn't be performed because object '$Identity' couldn't be found on 'AM0PR01A001DC01.EURPRD01.PROD.OUTLOOK.COM'." -Category NotSpecified
            return
        }
        $mailboxes = @($one)
    }
    foreach ($mailbox in $mailboxes) {
        [pscustomobject][ordered]@{
            Identity           = [string]$mailbox.Identity
            Name               = [string]$mailbox.Identity
            PrimarySmtpAddress = [string]$mailbox.PrimarySmtpAddress
            EwsEnabled         = Get-StandInValue $mailbox 'EwsEnabled' $null
        }
    }
}

function Set-CASMailbox {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, Position = 0)][string]$Identity, [System.Nullable[bool]]$EwsEnabled)
    Assert-ExchangeConnected 'Set-CASMailbox'
    Add-StandInCall 'Set-CASMailbox' $PSBoundParameters
    $mailbox = Find-StandInMailbox $Identity
    if ($null -eq $mailbox) { throw "The operation couldn't be performed because object '$Identity' couldn't be found on 'AM0PR01A001DC01.EURPRD01.PROD.OUTLOOK.COM'." }
    if ($PSBoundParameters.ContainsKey('EwsEnabled')) { $mailbox.EwsEnabled = $EwsEnabled }
}
