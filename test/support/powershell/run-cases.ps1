<#
    Test fixture: runs many cases of agent/adapters/powershell/*.ps1 in one pwsh process, each against the
    stand-ins (standins.ps1) with its own state. -CasesFile is a JSON array of
    @{ id; script (a .ps1 path); params (named parameters, splatted: no command text is built);
    state (standins.ps1); env (variables to set, $null to remove, restored afterwards) }.
    $env:COMPUTERNAME is the state's windows.computerName. Writes a JSON array to -ResultFile:
    @{ id; exitCode; stdout (lines, as the console host prints them: output, warnings, information);
    stderr ([Console]::Error and error records); calls; state (after the script) }.
    Used by test/support/powershell-standins.ts.
#>
param(
    [Parameter(Mandatory = $true)][string]$CasesFile,
    [Parameter(Mandatory = $true)][string]$ResultFile
)

$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot 'standins.ps1')

# $null removes the variable ([Environment]::SetEnvironmentVariable would get '' from PowerShell's $null).
function Set-CaseVariable([string]$Name, $Value) {
    if ($null -eq $Value) { Remove-Item -LiteralPath "Env:$Name" -ErrorAction SilentlyContinue }
    else { Set-Item -LiteralPath "Env:$Name" -Value ([string]$Value) }
}

$cases = @(Get-Content -Raw -LiteralPath $CasesFile | ConvertFrom-Json -AsHashtable)
$results = [System.Collections.Generic.List[object]]::new()
foreach ($case in $cases) {
    Initialize-StandIn $case.state
    $variables = @{}
    if ($null -ne $case.env) { foreach ($key in $case.env.Keys) { $variables[$key] = $case.env[$key] } }
    $variables['COMPUTERNAME'] = [string](Get-StandInValue $global:StandIn.state.windows 'computerName' 'CRMAPP01')
    $saved = @{}
    foreach ($key in $variables.Keys) {
        $saved[$key] = [Environment]::GetEnvironmentVariable($key)
        Set-CaseVariable $key $variables[$key]
    }
    $stderr = [System.IO.StringWriter]::new()
    $console = [Console]::Error
    [Console]::SetError($stderr)
    $stdout = [System.Collections.Generic.List[string]]::new()
    $global:LASTEXITCODE = 0
    $exitCode = 0
    try {
        $params = $case.params
        if ($null -eq $params) { $params = @{} }
        $ErrorActionPreference = 'Continue'
        & $case.script @params *>&1 | ForEach-Object {
            if ($_ -is [System.Management.Automation.ErrorRecord]) { $stderr.WriteLine([string]$_) }
            elseif ($_ -is [System.Management.Automation.WarningRecord]) { $stdout.Add('WARNING: ' + $_.Message) }
            elseif ($_ -is [System.Management.Automation.VerboseRecord] -or $_ -is [System.Management.Automation.DebugRecord]) { }
            else { $stdout.Add([string]$_) }
        }
        $exitCode = $LASTEXITCODE
    }
    catch {
        # What powershell.exe -File does with an uncaught terminating error: it prints it and exits 1.
        $stderr.WriteLine([string]$_)
        $exitCode = 1
    }
    finally {
        $ErrorActionPreference = 'Stop'
        [Console]::SetError($console)
        foreach ($key in $saved.Keys) { Set-CaseVariable $key $saved[$key] }
    }
    $results.Add([ordered]@{
            id       = $case.id
            exitCode = $exitCode
            stdout   = @($stdout)
            stderr   = $stderr.ToString()
            calls    = @($global:StandIn.calls)
            state    = $global:StandIn.state
        })
}
Set-Content -LiteralPath $ResultFile -Value (ConvertTo-Json -InputObject @($results) -Depth 30 -Compress) -Encoding utf8NoBOM
