<#
.SYNOPSIS
    Whether the account this script runs as is a local administrator of this host (the
    certificate and service steps need it).
.DESCRIPTION
    WindowsPrincipal.IsInRole(Administrator) of the current identity: true only when the process
    runs elevated (with UAC, an administrator's non-elevated token answers false, and the steps
    that need the rights would fail the same way). Uses no CRM cmdlet. Prints one JSON object:
    {"isAdministrator":true|false,"user":"DOMAIN\\user"}
#>
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

try {
    $identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = [System.Security.Principal.WindowsPrincipal]::new($identity)
    $result = [ordered]@{
        isAdministrator = [bool]$principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)
        user = [string]$identity.Name
    }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Test-LocalAdministrator: $($_.Exception.Message)")
    exit 1
}
