<#
.SYNOPSIS
    Grants the async service account Read on the private key of the certificate with this
    thumbprint in LocalMachine\My (the "Manage Private Keys" dialog, scripted).
.DESCRIPTION
    The key container file is under %ProgramData%\Microsoft\Crypto\RSA\MachineKeys (CSP keys) or
    %ProgramData%\Microsoft\Crypto\Keys (CNG keys); Read is added with Get-Acl / Set-Acl and read
    back. Runs locally when -ComputerName is this machine, otherwise through Invoke-Command.
    Prints one JSON object: {"granted":true|false,"alreadyHad":true|false}
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ComputerName,

    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9A-Fa-f]{40}$')]
    [string]$Thumbprint,

    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string]$ServiceAccount
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$grant = {
    param([string]$Thumbprint, [string]$ServiceAccount)
    $ErrorActionPreference = 'Stop'

    # ---- Get-CertificateKeyInfo: identical in Get-MachineCertificate.ps1, Grant-CertificateKeyAccess.ps1
    # and Import-S2SCertificate.ps1 (a remote script block cannot dot-source a local file; the test
    # test/agent/adapters/powershell/scripts.test.ts checks the three copies are the same).
    # The KeySpec and the key container file of a certificate's private key, as CRM sees them.
    # Windows PowerShell 5.1 runs on .NET Framework 4.x, where
    # RSACertificateExtensions.GetRSAPrivateKey() opens every key through CNG
    # (CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG), a legacy CSP key too: it returns RSACng and a KeySpec 1 key
    # would read as KeySpec 0, its file looked for under Crypto\Keys (dotnet/corefx#3502).
    # X509Certificate2.PrivateKey opens CSP keys as RSACryptoServiceProvider: KeyNumber is the KeySpec
    # (Exchange 1, Signature 2) and the file is Crypto\RSA\MachineKeys\<UniqueKeyContainerName>. For a
    # CNG key it throws ("Invalid provider type specified"): KeySpec 0, the file
    # Crypto\Keys\<RSACng.Key.UniqueName> through GetRSAPrivateKey(). `key` is the opened key object
    # (RSACryptoServiceProvider or RSACng), for deleting a key the import persisted.
    function Get-CertificateKeyInfo([System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate) {
        if (-not $Certificate.HasPrivateKey) { return $null }
        $csp = $null
        try { $csp = $Certificate.PrivateKey } catch { $csp = $null }
        if ($csp -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $container = $csp.CspKeyContainerInfo
            $keySpec = 2
            if ($container.KeyNumber -eq [System.Security.Cryptography.KeyNumber]::Exchange) { $keySpec = 1 }
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\RSA\MachineKeys\' + $container.UniqueKeyContainerName)
            return @{ keySpec = $keySpec; file = $file; key = $csp }
        }
        $cng = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($cng -is [System.Security.Cryptography.RSACng]) {
            $file = Join-Path -Path $env:ProgramData -ChildPath ('Microsoft\Crypto\Keys\' + $cng.Key.UniqueName)
            return @{ keySpec = 0; file = $file; key = $cng }
        }
        throw "The private key of $($Certificate.Thumbprint) is not an RSA key."
    }
    # ---- end Get-CertificateKeyInfo

    # ---- Test-AccountCanRead: identical in Get-MachineCertificate.ps1 and Grant-CertificateKeyAccess.ps1
    # (test/agent/adapters/powershell/scripts.test.ts checks the two copies are the same).
    # Whether $Account can read the key container file $File, never claiming access that is not
    # there: a false "cannot read" costs a second (harmless) grant, a false "can read" leaves CRM with
    # "Keyset does not exist". The SIDs counted as the account's:
    #  - its own SID;
    #  - Everyone (S-1-1-0) and Authenticated Users (S-1-5-11): in the token of every service logon
    #    (domain accounts, gMSAs, NETWORK SERVICE, LocalSystem);
    #  - for a domain account, its domain security groups, nested ones included, from Active
    #    Directory's constructed tokenGroups attribute (ADSI over LDAP: built into Windows PowerShell
    #    5.1, no RSAT; WindowsIdentity(UPN) needs S4U and a UPN, so it is not used). When no domain
    #    controller answers, the account's domain groups are not counted;
    #  - the server's BUILTIN groups named in the ACL (Administrators, Users, ...) whose direct members
    #    (WinNT provider) include one of the SIDs above (BUILTIN\Users holds Authenticated Users by
    #    default, but only a membership that is there counts).
    # Not counted (so possibly a false "cannot read"): groups nested inside local groups, local
    # groups that are not BUILTIN, and logon-type SIDs (SERVICE, BATCH), which depend on how the
    # process is started.
    # Read: ReadData (bit 0; Read, ReadAndExecute, Modify and FullControl all include it), GENERIC_ALL
    # (bit 28) or GENERIC_READ (bit 31, a negative Int32). A Deny rule with one of them for one of the
    # SIDs wins over any Allow.
    function Test-AccountCanRead([string]$File, [string]$Account) {
        $sid = ([System.Security.Principal.NTAccount]::new($Account)).Translate([System.Security.Principal.SecurityIdentifier])
        $sids = @{}
        $sids[$sid.Value] = $true
        $sids['S-1-1-0'] = $true
        $sids['S-1-5-11'] = $true
        if ($null -ne $sid.AccountDomainSid) {
            try {
                $entry = [ADSI]('LDAP://<SID=' + $sid.Value + '>')
                $entry.RefreshCache([string[]]@('tokenGroups'))
                foreach ($raw in $entry.Properties['tokenGroups']) {
                    $sids[([System.Security.Principal.SecurityIdentifier]::new([byte[]]$raw, 0)).Value] = $true
                }
            }
            catch {
                # A local account, or no domain controller: its domain groups are not counted.
                $null = $_
            }
        }
        $rules = @((Get-Acl -LiteralPath $File).GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier]))
        foreach ($rule in $rules) {
            $ruleSid = $rule.IdentityReference.Value
            if ($sids.ContainsKey($ruleSid) -or -not $ruleSid.StartsWith('S-1-5-32-')) { continue }
            try {
                $groupName = ([System.Security.Principal.SecurityIdentifier]::new($ruleSid)).Translate([System.Security.Principal.NTAccount]).Value.Split('\')[-1]
                $group = [ADSI]('WinNT://' + $env:COMPUTERNAME + '/' + $groupName + ',group')
                foreach ($member in @($group.psbase.Invoke('Members'))) {
                    $memberSid = $member.GetType().InvokeMember('objectSid', 'GetProperty', $null, $member, $null)
                    if ($sids.ContainsKey(([System.Security.Principal.SecurityIdentifier]::new([byte[]]$memberSid, 0)).Value)) {
                        $sids[$ruleSid] = $true
                        break
                    }
                }
            }
            catch {
                # The group's members cannot be listed: its rule is not counted.
                $null = $_
            }
        }
        $allowed = $false
        foreach ($rule in $rules) {
            if (-not $sids.ContainsKey($rule.IdentityReference.Value)) { continue }
            $mask = [int32]$rule.FileSystemRights
            $reads = (($mask -band 1) -ne 0) -or (($mask -band 0x10000000) -ne 0) -or ($mask -lt 0)
            if (-not $reads) { continue }
            if ($rule.AccessControlType -eq [System.Security.AccessControl.AccessControlType]::Deny) { return $false }
            $allowed = $true
        }
        return $allowed
    }
    # ---- end Test-AccountCanRead

    $certificate = Get-Item -LiteralPath ('Cert:\LocalMachine\My\' + $Thumbprint) -ErrorAction SilentlyContinue
    if ($null -eq $certificate) { throw "The certificate $Thumbprint is not in LocalMachine\My." }
    if (-not $certificate.HasPrivateKey) { throw "The certificate $Thumbprint in LocalMachine\My has no private key (private key not found)." }

    $account = [System.Security.Principal.NTAccount]::new($ServiceAccount)
    $file = (Get-CertificateKeyInfo $certificate).file
    if (Test-AccountCanRead -File $file -Account $ServiceAccount) {
        return @{ granted = $true; alreadyHad = $true }
    }
    $acl = Get-Acl -LiteralPath $file
    $rule = [System.Security.AccessControl.FileSystemAccessRule]::new(
        $account,
        [System.Security.AccessControl.FileSystemRights]::Read,
        [System.Security.AccessControl.AccessControlType]::Allow)
    $acl.AddAccessRule($rule)
    Set-Acl -LiteralPath $file -AclObject $acl
    return @{ granted = (Test-AccountCanRead -File $file -Account $ServiceAccount); alreadyHad = $false }
}

try {
    $thisComputer = @('localhost', '.', $env:COMPUTERNAME, [System.Net.Dns]::GetHostEntry([string]::Empty).HostName)
    if ($thisComputer -contains $ComputerName) {
        $state = & $grant $Thumbprint.ToUpperInvariant() $ServiceAccount
    }
    else {
        $state = Invoke-Command -ComputerName $ComputerName -ScriptBlock $grant -ArgumentList $Thumbprint.ToUpperInvariant(), $ServiceAccount
    }
    $result = [ordered]@{ granted = [bool]$state.granted; alreadyHad = [bool]$state.alreadyHad }
    ConvertTo-Json -InputObject $result -Compress -Depth 5
}
catch {
    [Console]::Error.WriteLine("Grant-CertificateKeyAccess on ${ComputerName}: $($_.Exception.Message)")
    exit 1
}
