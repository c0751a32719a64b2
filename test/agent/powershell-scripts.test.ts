import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCRIPTS_DIR } from '../../agent/powershell-runner.ts';
import { powershellScripts, type PowershellScriptName } from '../../agent/powershell-scripts.ts';

/**
 * The .ps1 files cannot run here (no Windows PowerShell), so they are checked as text: the param()
 * block of each equals the table in agent/powershell-scripts.ts, and the rules every script must
 * follow (Stop on errors, one compressed JSON object, no string-built commands) hold.
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

interface ScriptParam {
  name: string;
  type: string | undefined;
  mandatory: boolean;
}

/** The script's own param() block: the one right after [CmdletBinding()], split at top-level commas. */
function scriptParams(text: string): ScriptParam[] {
  const binding = /\[CmdletBinding\(\)\]\s*param\s*\(/i.exec(text);
  if (!binding) throw new Error('no [CmdletBinding()] param( block');
  let depth = 1;
  let quote: string | null = null;
  let current = '';
  const parts: string[] = [];
  for (let i = binding.index + binding[0].length; i < text.length; i++) {
    const ch = text.charAt(i);
    if (quote) {
      current += ch;
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      current += ch;
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    if (ch === ')' || ch === ']' || ch === '}') depth--;
    if (depth === 0) {
      parts.push(current);
      break;
    }
    if (ch === ',' && depth === 1) {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  if (depth !== 0) throw new Error('unclosed param( block');
  return parts
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => {
      const withoutStrings = p.replace(/'[^']*'/g, "''");
      const variable = /\$(\w+)\s*$/.exec(withoutStrings);
      if (!variable?.[1]) throw new Error(`cannot read the parameter in: ${p}`);
      const types = [...withoutStrings.matchAll(/\[(\w+(?:\[\])?)\]/g)].map((m) => m[1]);
      return {
        name: variable[1],
        type: types.at(-1),
        mandatory: /\[Parameter\([^)]*Mandatory\s*=\s*\$true[^)]*\)\]/i.test(p),
      };
    });
}

describe('agent/powershell/*.ps1 against the script table', () => {
  it('has exactly one script per table entry', () => {
    expect(scriptFiles).toEqual(names.map((n) => `${n}.ps1`).sort());
  });

  it.each(names)('%s: param() has exactly the table\'s parameters, mandatory strings, in order', (name) => {
    const params = scriptParams(source(name));
    expect(params.map((p) => p.name)).toEqual([...powershellScripts[name].params]);
    for (const p of params) {
      expect(p, `${name} -${p.name}`).toMatchObject({ type: 'string', mandatory: true });
    }
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
    expect(importScript).toContain('& certutil.exe -importpfx -p $plain $File AT_KEYEXCHANGE');
    expect(importScript).toContain('New-PSSession -ComputerName $ComputerName');
    expect(importScript).toContain('-ToSession $session');
    expect(importScript).toMatch(/Remove-Item -LiteralPath \$File -Force/);
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

  it('never writes the maintenance service name in double quotes (PowerShell would expand $maintenance)', () => {
    for (const name of names) expect(source(name), name).not.toContain('"MSCRMAsyncService$maintenance"');
  });

  it('the parser reads a param() block with attributes, patterns and nested parentheses', () => {
    const params = scriptParams(`[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)] [ValidatePattern('^[0-9]{2},(x)$')] [string]$First,
    [Parameter(Mandatory = $false)][int]$Second
)
$inner = { param([string]$Ignored) }`);
    expect(params).toEqual([
      { name: 'First', type: 'string', mandatory: true },
      { name: 'Second', type: 'int', mandatory: false },
    ]);
  });
});
