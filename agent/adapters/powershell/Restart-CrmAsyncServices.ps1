<#
.SYNOPSIS
    Restarts MSCRMAsyncService and MSCRMAsyncService$maintenance on an async-service server, so
    they pick up the S2S certificate and settings.
.DESCRIPTION
    Runs locally when -ComputerName is this machine, otherwise through Invoke-Command. Prints one
    JSON object: {"services":[{"name","status"}]}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ComputerName
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$restart = {
    $ErrorActionPreference = 'Stop'
    $services = @()
    foreach ($name in @('MSCRMAsyncService', 'MSCRMAsyncService$maintenance')) {
        Restart-Service -Name $name -Force
        $service = Get-Service -Name $name
        $services += @{ name = $name; status = [string]$service.Status }
    }
    return @{ services = $services }
}

try {
    $thisComputer = @('localhost', '.', $env:COMPUTERNAME, [System.Net.Dns]::GetHostEntry([string]::Empty).HostName)
    if ($thisComputer -contains $ComputerName) {
        $state = & $restart
    }
    else {
        $state = Invoke-Command -ComputerName $ComputerName -ScriptBlock $restart
    }
    $result = [ordered]@{
        services = @($state.services | ForEach-Object { [ordered]@{ name = [string]$_.name; status = [string]$_.status } })
    }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Restart-CrmAsyncServices on ${ComputerName}: $($_.Exception.Message)")
    exit 1
}
