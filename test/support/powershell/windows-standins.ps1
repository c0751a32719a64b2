<#
    Test fixture (dot-sourced by standins.ps1): the Windows side of an async-service server, on
    $global:StandIn.state.windows:
      computerName: this machine's name (the runner sets $env:COMPUTERNAME to it);
      computers: @{ <name> = @{ services = @{ <service> = <status> }; restartStatus = <status after
      Restart-Service, default Running>; certificates = [@{ derBase64 }] } }: this machine and the
      servers Invoke-Command -ComputerName reaches (any other name fails like WinRM).
    Shadows Get-Service, Restart-Service, Invoke-Command, and Get-Item / Get-ChildItem for the
    Cert:\LocalMachine\My paths (other paths go to the real cmdlets). The store holds real
    X509Certificate2 objects, public only: a private key in the machine key set (CSP or CNG, its
    KeySpec and container file) cannot exist on Linux, so no stand-in offers one.
    Invoke-Command runs the script block with the target's state and $env:COMPUTERNAME, and returns
    its result the way remoting does: serialized and deserialized (PSSerializer).
    Unverified: the wording of the errors (modelled on Windows PowerShell 5.1's).
#>

function Get-WindowsComputer {
    $windows = $global:StandIn.state.windows
    $computers = Get-StandInValue $windows 'computers' @{}
    $name = $env:COMPUTERNAME
    $computer = Get-StandInValue $computers $name $null
    if ($null -eq $computer) { throw "stand-in: no state for the computer '$name' (state.windows.computers)." }
    foreach ($key in @('services')) { if (-not $computer.ContainsKey($key) -or $null -eq $computer[$key]) { $computer[$key] = @{} } }
    if (-not $computer.ContainsKey('certificates') -or $null -eq $computer.certificates) { $computer.certificates = @() }
    return $computer
}

function Get-Service {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, Position = 0)][string[]]$Name)
    $services = (Get-WindowsComputer).services
    foreach ($one in $Name) {
        if (-not $services.ContainsKey($one)) {
            Write-Error -Message "Cannot find any service with service name '$one'." -Category ObjectNotFound
            continue
        }
        [pscustomobject]@{ Name = $one; DisplayName = $one; Status = [string]$services[$one]; MachineName = $env:COMPUTERNAME }
    }
}

function Restart-Service {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, Position = 0)][string[]]$Name, [switch]$Force)
    Add-StandInCall 'Restart-Service' ([ordered]@{ ComputerName = $env:COMPUTERNAME; Name = $Name; Force = [bool]$Force })
    $computer = Get-WindowsComputer
    foreach ($one in $Name) {
        if (-not $computer.services.ContainsKey($one)) { throw "Cannot find any service with service name '$one'." }
        $computer.services[$one] = [string](Get-StandInValue $computer 'restartStatus' 'Running')
    }
}

function Invoke-Command {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string[]]$ComputerName,
        [Parameter(Mandatory = $true)][scriptblock]$ScriptBlock,
        [object[]]$ArgumentList = @()
    )
    Add-StandInCall 'Invoke-Command' ([ordered]@{ ComputerName = $ComputerName; ArgumentList = $ArgumentList })
    $computers = Get-StandInValue $global:StandIn.state.windows 'computers' @{}
    foreach ($target in $ComputerName) {
        if (-not $computers.ContainsKey($target)) {
            throw "[$target] Connecting to remote server $target failed with the following error message : WinRM cannot complete the operation. Verify that the specified computer name is valid, that the computer is accessible over the network, and that a firewall exception for the WinRM service is enabled and allows access from this computer."
        }
        $here = $env:COMPUTERNAME
        $env:COMPUTERNAME = $target
        try {
            # A new scope without the caller's variables would be closer to a remote runspace; the
            # scripts' blocks take everything through param() (the test checks they do).
            $output = & $ScriptBlock @ArgumentList
        }
        finally {
            $env:COMPUTERNAME = $here
        }
        foreach ($item in @($output)) {
            [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($item, 5))
        }
    }
}

function Get-StandInCertificates {
    foreach ($entry in @((Get-WindowsComputer).certificates)) {
        [System.Security.Cryptography.X509Certificates.X509Certificate2]::new([Convert]::FromBase64String([string]$entry.derBase64))
    }
}

# 'Cert:\LocalMachine\My' (the store) or 'Cert:\LocalMachine\My\<thumbprint>' (one certificate); $null for any other path.
function Resolve-StandInCertPath([string]$Path) {
    if ($Path -notmatch '^Cert:\\') { return $null }
    if ($Path -match '^Cert:\\LocalMachine\\My\\?$') { return @{ store = $true } }
    if ($Path -match '^Cert:\\LocalMachine\\My\\([^\\]+)$') { return @{ store = $false; thumbprint = $Matches[1] } }
    throw "stand-in: only Cert:\LocalMachine\My is simulated, not $Path."
}

function Get-Item {
    [CmdletBinding()]
    param([Parameter(Position = 0)][string[]]$Path, [string[]]$LiteralPath, [switch]$Force)
    $given = @($Path) + @($LiteralPath) | Where-Object { $null -ne $_ }
    $cert = $null
    if (@($given).Count -eq 1) { $cert = Resolve-StandInCertPath ([string]@($given)[0]) }
    if ($null -eq $cert) { return Microsoft.PowerShell.Management\Get-Item @PSBoundParameters }
    if ($cert.store) { return [pscustomobject]@{ Name = 'My'; Location = 'LocalMachine' } }
    $found = @(Get-StandInCertificates | Where-Object { $_.Thumbprint -eq $cert.thumbprint })
    if ($found.Count -eq 0) {
        Write-Error -Message "Cannot find path '$(@($given)[0])' because it does not exist." -Category ObjectNotFound
        return
    }
    return $found[0]
}

function Get-ChildItem {
    [CmdletBinding()]
    param([Parameter(Position = 0)][string[]]$Path, [string[]]$LiteralPath, [switch]$Recurse, [switch]$Force, [string]$Filter)
    $given = @($Path) + @($LiteralPath) | Where-Object { $null -ne $_ }
    $cert = $null
    if (@($given).Count -eq 1) { $cert = Resolve-StandInCertPath ([string]@($given)[0]) }
    if ($null -eq $cert) { return Microsoft.PowerShell.Management\Get-ChildItem @PSBoundParameters }
    if (-not $cert.store) { return }
    Get-StandInCertificates
}
