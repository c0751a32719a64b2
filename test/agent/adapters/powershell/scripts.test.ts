import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCRIPTS_DIR } from '../../../../agent/adapters/powershell/runner.ts';
import { powershellScripts, type PowershellScriptName } from '../../../../agent/adapters/powershell/scripts.ts';

/**
 * The .ps1 files checked as text: the rules every script must follow (Stop on errors, one
 * compressed JSON object, no string-built commands) and the cmdlets and invariants of
 * d365-contract.md. PowerShell's own parser checks their syntax and param() blocks
 * (powershell-parse.test.ts); powershell-run.test.ts runs them under pwsh against stand-ins.
 */
const scriptFiles = readdirSync(DEFAULT_SCRIPTS_DIR).filter((f) => f.endsWith('.ps1')).sort();
const names = Object.keys(powershellScripts) as PowershellScriptName[];

function source(name: string): string {
  return readFileSync(join(DEFAULT_SCRIPTS_DIR, `${name}.ps1`), 'utf8');
}

/** Code without comments and without the contents of string literals (so checks see only code). */
function codeOnly(text: string): string {
  return text
    .replace(/<#[\s\S]*?#>/g, '')
    .replace(/#[^\n]*/g, '')
    .replace(/'[^'\n]*'/g, "''")
    .replace(/"(?:[^"`\n]|`.)*"/g, '""');
}

describe('agent/adapters/powershell/*.ps1 against the script table', () => {
  it('has exactly one script per table entry', () => {
    expect(scriptFiles).toEqual(names.map((n) => `${n}.ps1`).sort());
  });

  it.each(names)('%s: follows the script rules', (name) => {
    const text = source(name);
    const code = codeOnly(text);
    expect(text).toMatch(/^\s*\$ErrorActionPreference = 'Stop'\s*$/m);
    expect(code).not.toMatch(/Invoke-Expression|\biex\b|\[scriptblock\]::Create|-EncodedCommand|Start-Process/i);
    // Exactly one result line: a compressed JSON object of the whole result.
    expect(text).toMatch(/ConvertTo-Json -InputObject .+ -Compress -Depth 5/);
    // Errors go to stderr with exit 1.
    expect(text).toMatch(/\[Console\]::Error\.WriteLine\(/);
    expect(text).toMatch(/^\s*exit 1\s*$/m);
    // The password is only ever read from the environment, and only by the script that needs it.
    const needsPassword = 'needsPassword' in powershellScripts[name];
    expect(text.includes('$env:SETUP_PFX_PASSWORD')).toBe(needsPassword);
  });

  it('loads the CRM snap-in exactly where CRM cmdlets are used', () => {
    for (const name of names) {
      const code = codeOnly(source(name));
      const usesCrm = /\b(Get|Set)-Crm\w+/.test(code);
      expect(/Add-PSSnapin Microsoft\.Crm\.PowerShell/.test(code), name).toBe(usesCrm);
    }
  });

  it('server scripts run locally for this machine and through Invoke-Command otherwise', () => {
    for (const name of names) {
      const serverScript = (powershellScripts[name].params as readonly string[]).includes('ComputerName');
      const text = source(name);
      expect(text.includes('$env:COMPUTERNAME'), name).toBe(serverScript);
      expect(/Invoke-Command[^\n]*-ComputerName \$ComputerName|New-PSSession -ComputerName \$ComputerName/.test(text), name).toBe(serverScript);
    }
  });

  it('uses the cmdlets and arguments of d365-contract.md', () => {
    expect(source('Register-S2SCertificate')).toContain(
      'Set-CrmCertificate -CertificateType S2STokenIssuer -StoreName My -StoreLocation LocalMachine -StoreFindType FindBySubjectDistinguishedName -DataFile $cerFile',
    );
    const importScript = source('Import-S2SCertificate');
    const importCode = codeOnly(importScript);
    // No certutil (its -p would put the password on a command line), no PFX copy on the server.
    expect(importCode).not.toMatch(/certutil/i);
    expect(importCode).not.toMatch(/Copy-Item|-ToSession|GetTempPath|WriteAllBytes/);
    expect(importScript).toContain('$flags = [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::MachineKeySet -bor [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::PersistKeySet');
    expect(importScript).toContain('$collection.Import($Bytes, $plain, $flags)');
    expect(importScript).toMatch(/X509Store\]::new\(\s*\[System\.Security\.Cryptography\.X509Certificates\.StoreName\]::My,\s*\[System\.Security\.Cryptography\.X509Certificates\.StoreLocation\]::LocalMachine\)/);
    expect(importScript).toContain('$store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadWrite)');
    expect(importScript).toContain('$store.Add($certificate[0])');
    expect(importScript).toContain('$bytes = [System.IO.File]::ReadAllBytes(');
    expect(importScript).toContain('Invoke-Command -ComputerName $ComputerName -ScriptBlock $import -ArgumentList $bytes, $password');
    // The KeySpec is read back and anything but 1 fails with the manual fix.
    expect(importScript).toMatch(/\$key = Get-CertificateKeyInfo \$added\s+if \(\$null -eq \$key -or \$key\.keySpec -ne 1\)/);
    expect(importScript).toContain('certutil -importpfx <file> AT_KEYEXCHANGE');
    // The password is never a cmdlet argument (module logging records those): no ConvertTo-SecureString, no Get-PfxData.
    expect(importCode).not.toMatch(/ConvertTo-SecureString|Get-PfxData|Import-PfxCertificate/i);
    expect(importScript).toContain('$password.AppendChar($character)');
    // An empty password is a valid one: only an absent variable is refused.
    expect(importCode).not.toMatch(/IsNullOrEmpty\(\$env:SETUP_PFX_PASSWORD\)/);
    const grant = source('Grant-CertificateKeyAccess');
    expect(grant).toContain('Microsoft\\Crypto\\RSA\\MachineKeys\\');
    expect(grant).toContain('Microsoft\\Crypto\\Keys\\');
    expect(grant).toMatch(/Get-Acl -LiteralPath \$file/);
    expect(grant).toMatch(/Set-Acl -LiteralPath \$file -AclObject \$acl/);
    const set = source('Set-S2SServerSettings');
    expect(set).toContain("$setting.LogicalName = 'ServerSettings'");
    expect(set).toContain("'S2SDefaultAuthorizationServerPrincipalId'");
    expect(set).toContain("'S2SDefaultAuthorizationServerMetadataUrl'");
    expect(set).toContain('Set-CrmAdvancedSetting -Entity $setting');
    expect(source('Get-S2SServerSettings')).toContain('Get-CrmAdvancedSetting -ConfigurationEntityName ServerSettings -Setting $Name');
    expect(source('Get-S2SCertificate')).toContain("Get-CrmCertificate | Where-Object { [string]$_.CertificateType -eq 'S2STokenIssuer' }");
    const restart = source('Restart-CrmAsyncServices');
    expect(restart).toContain("@('MSCRMAsyncService', 'MSCRMAsyncService$maintenance')");
    expect(restart).toContain('Restart-Service -Name $name -Force');
  });

  it('reads KeySpec and key file with one helper, identical in the three key scripts, X509Certificate2.PrivateKey first (dotnet/corefx#3502)', () => {
    const keyScripts = ['Get-MachineCertificate', 'Grant-CertificateKeyAccess', 'Import-S2SCertificate'] as const;
    const helpers = keyScripts.map((name) => {
      const text = source(name);
      const start = text.indexOf('    # ---- Get-CertificateKeyInfo:');
      const end = text.indexOf('    # ---- end Get-CertificateKeyInfo');
      expect(start, name).toBeGreaterThan(0);
      expect(end, name).toBeGreaterThan(start);
      // Inside the script block that runs on the server (after `= {` and its param()).
      expect(text.slice(0, start), name).toMatch(/= \{\s+param\([^)]*\)\s+\$ErrorActionPreference = 'Stop'\s+$/);
      // Used, and no other way of reading the key in the script.
      expect(codeOnly(text.slice(end)), name).toMatch(/Get-CertificateKeyInfo \$/);
      expect(codeOnly(text.slice(0, start) + text.slice(end)), name).not.toMatch(/GetRSAPrivateKey|CspKeyContainerInfo|\.PrivateKey\b/);
      return text.slice(start, end);
    });
    expect(helpers[1]).toBe(helpers[0]);
    expect(helpers[2]).toBe(helpers[0]);
    const helper = codeOnly(helpers[0] ?? '');
    // PrivateKey (CAPI → RSACryptoServiceProvider) before GetRSAPrivateKey (which opens CAPI keys as RSACng on .NET Framework).
    const privateKeyAt = helper.indexOf('$Certificate.PrivateKey');
    const cngAt = helper.indexOf('GetRSAPrivateKey($Certificate)');
    expect(privateKeyAt).toBeGreaterThan(0);
    expect(cngAt).toBeGreaterThan(privateKeyAt);
    expect(helper).toMatch(/try \{ \$csp = \$Certificate\.PrivateKey \} catch \{ \$csp = \$null \}/);
    expect(helper).toContain('$csp -is [System.Security.Cryptography.RSACryptoServiceProvider]');
    expect(helper).toContain('$container.KeyNumber -eq [System.Security.Cryptography.KeyNumber]::Exchange');
    expect(helpers[0]).toContain("'Microsoft\\Crypto\\RSA\\MachineKeys\\' + $container.UniqueKeyContainerName");
    expect(helpers[0]).toContain("'Microsoft\\Crypto\\Keys\\' + $cng.Key.UniqueName");
    expect(helpers[0]).toContain('dotnet/corefx#3502');
  });

  it('Get-MachineCertificate compares -SubjectDer (subject Name DER, exact) before and regardless of finding -Thumbprint', () => {
    const text = source('Get-MachineCertificate');
    const duplicateAt = text.indexOf('Where-Object { [Convert]::ToBase64String($_.SubjectName.RawData) -ceq $SubjectDer -and $_.Thumbprint -ne $Thumbprint }');
    const lookupAt = text.indexOf("$certificate = Get-Item -LiteralPath ('Cert:\\LocalMachine\\My\\' + $Thumbprint)");
    expect(duplicateAt).toBeGreaterThan(0);
    expect(lookupAt).toBeGreaterThan(duplicateAt);
    expect(text).toContain('duplicateSubject      = ($others.Count -gt 0)');
    expect(text).toContain('-ArgumentList $Thumbprint.ToUpperInvariant(), $SubjectDer, $ServiceAccount');
    expect(text).toContain("[ValidatePattern('^[A-Za-z0-9+/]+={0,2}$')]\n    [string]$SubjectDer");
    // No script compares subjects as text any more (Windows' S=, quoting and OID.x.y.z= are its own).
    for (const name of names) expect(codeOnly(source(name)), name).not.toMatch(/\.Subject -eq|-eq \$Subject\b/);
  });

  it('Import-S2SCertificate refuses a same-subject certificate by comparing the PFX certificate\'s subject Name DER', () => {
    const text = source('Import-S2SCertificate');
    expect(text).toContain('$subjectDer = [Convert]::ToBase64String($withKey[0].SubjectName.RawData)');
    expect(text).toContain("Where-Object { [Convert]::ToBase64String($_.SubjectName.RawData) -ceq $subjectDer -and $_.Thumbprint -ne $thumbprint }");
  });

  it('Import-S2SCertificate removes what it left when the store\'s Add or the KeySpec read-back fails', () => {
    const text = source('Import-S2SCertificate');
    const code = codeOnly(text);
    const importAt = text.indexOf('$collection.Import($Bytes, $plain, $flags)');
    const tryAt = text.indexOf('    try {', importAt);
    const addAt = text.indexOf('$store.Add($certificate[0])');
    const readBackAt = text.indexOf('$key = Get-CertificateKeyInfo $added');
    const catchAt = text.indexOf('    catch {\n        $failure = $_', readBackAt);
    // Everything after the persisting Import is inside the try whose catch cleans up.
    expect(importAt).toBeGreaterThan(0);
    expect(tryAt).toBeGreaterThan(importAt);
    expect(addAt).toBeGreaterThan(tryAt);
    expect(readBackAt).toBeGreaterThan(addAt);
    expect(catchAt).toBeGreaterThan(readBackAt);
    const cleanup = text.slice(catchAt, text.indexOf('    return @{ thumbprint = $thumbprint; keySpec = 1; alreadyPresent = $false }'));
    // The certificate leaves the store only when this import added it; the persisted keys are deleted (CAPI and CNG).
    expect(cleanup).toMatch(/if \(\$storeChanged -and \$null -eq \$existing\)[\s\S]*\$store\.Remove\(\$certificate\[0\]\)/);
    expect(cleanup).toContain('$leftover = Get-CertificateKeyInfo $item');
    expect(cleanup).toMatch(/\$leftover\.key\.PersistKeyInCsp = \$false\s+\$leftover\.key\.Clear\(\)/);
    expect(cleanup).toContain('$leftover.key.Key.Delete()');
    expect(cleanup).toContain('throw $failure');
    // The collection is reset and cleared whatever happened.
    expect(cleanup).toMatch(/finally \{\s+foreach \(\$item in \$collection\) \{ \$item\.Reset\(\) \}\s+\$collection\.Clear\(\)/);
    expect(code).not.toMatch(/Remove-Item/);
  });

  it('Test-AccountCanRead: one helper in Get-MachineCertificate and Grant-CertificateKeyAccess, counting generic rights, groups and Deny', () => {
    const helpers = (['Get-MachineCertificate', 'Grant-CertificateKeyAccess'] as const).map((name) => {
      const text = source(name);
      const start = text.indexOf('    # ---- Test-AccountCanRead:');
      const end = text.indexOf('    # ---- end Test-AccountCanRead');
      expect(start, name).toBeGreaterThan(0);
      expect(end, name).toBeGreaterThan(start);
      expect(codeOnly(text.slice(end)), name).toMatch(/Test-AccountCanRead -File \$\w+(\.file)? -Account \$ServiceAccount/);
      return text.slice(start, end);
    });
    expect(helpers[1]).toBe(helpers[0]);
    const helper = helpers[0] ?? '';
    // The account's own SID, Everyone, Authenticated Users, its AD groups (tokenGroups) and the BUILTIN groups it is a member of.
    expect(helper).toContain("$sids['S-1-1-0'] = $true");
    expect(helper).toContain("$sids['S-1-5-11'] = $true");
    expect(helper).toContain("$entry.RefreshCache([string[]]@('tokenGroups'))");
    expect(helper).toContain("$ruleSid.StartsWith('S-1-5-32-')");
    expect(helper).toContain("$group.psbase.Invoke('Members')");
    // ReadData, GENERIC_ALL and GENERIC_READ (bit 31: negative as Int32) count as Read; Deny wins.
    expect(helper).toContain('$reads = (($mask -band 1) -ne 0) -or (($mask -band 0x10000000) -ne 0) -or ($mask -lt 0)');
    expect(helper).toMatch(/AccessControlType\]::Deny\) \{ return \$false \}/);
    // Not RSAT's ActiveDirectory module, not S4U.
    expect(codeOnly(helper)).not.toMatch(/Get-ADUser|Get-ADPrincipalGroupMembership|WindowsIdentity/);
  });

  it('reads Get-CrmAdvancedSetting with one Read-CrmSettingValue (the pair in .Attributes), identical in the four setting scripts', () => {
    const settingScripts = ['Get-S2SServerSettings', 'Set-S2SServerSettings', 'Get-S2STenantId', 'Set-S2STenantId'] as const;
    const helpers = settingScripts.map((name) => {
      const text = source(name);
      const start = text.indexOf('# ---- Read-CrmSettingValue:');
      const end = text.indexOf('# ---- end Read-CrmSettingValue');
      expect(start, name).toBeGreaterThan(0);
      expect(end, name).toBeGreaterThan(start);
      // Every Get-CrmAdvancedSetting result goes through it; nothing reads the entity as the value.
      const rest = codeOnly(text.slice(0, start) + text.slice(end));
      const reads = [...rest.matchAll(/Get-CrmAdvancedSetting /g)].length;
      expect(reads, name).toBeGreaterThan(0);
      expect([...rest.matchAll(/Read-CrmSettingValue \(Get-CrmAdvancedSetting /g)].length, name).toBe(reads);
      expect(rest, name).not.toMatch(/\.Value\b|PSObject\.Properties\['Value'\]/);
      return text.slice(start, end);
    });
    for (const helper of helpers.slice(1)) expect(helper).toBe(helpers[0]);
    expect(helpers[0]).toContain('foreach ($pair in $Entity.Attributes.GetEnumerator())');
    expect(helpers[0]).toContain('if ([string]$pair.Key -eq $Name) { $value = $pair.Value }');
  });

  it('signs in to Exchange Online and reads its objects with one helper block, identical in the three Exchange scripts', () => {
    const exchangeScripts = ['Get-EwsAccess', 'Set-EwsAccess', 'Set-MailboxEws'] as const;
    const blocks = exchangeScripts.map((name) => {
      const text = source(name);
      const start = text.indexOf('# ---- Exchange Online helpers:');
      const end = text.indexOf('# ---- end Exchange Online helpers');
      expect(start, name).toBeGreaterThan(0);
      expect(end, name).toBeGreaterThan(start);
      // Every script connects through it, and disconnects in a finally.
      const rest = codeOnly(text.slice(0, start) + text.slice(end));
      expect(rest, name).not.toMatch(/Connect-ExchangeOnline/);
      expect(rest, name).toMatch(/Connect-Exchange\s*\n\s*try \{[\s\S]*finally \{\s*Disconnect-ExchangeOnline -Confirm:\$false/);
      return text.slice(start, end);
    });
    for (const block of blocks.slice(1)) expect(block).toBe(blocks[0]);
    expect(blocks[0]).toContain('Connect-ExchangeOnline -AppId $AppId -CertificateThumbprint $CertificateThumbprint -Organization $Organization -ExchangeEnvironmentName $ExchangeEnvironmentName');
  });

  it('never writes the maintenance service name in double quotes (PowerShell would expand $maintenance)', () => {
    for (const name of names) expect(source(name), name).not.toContain('"MSCRMAsyncService$maintenance"');
  });
});
