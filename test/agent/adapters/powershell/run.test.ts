import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SCRIPTS_DIR } from '../../../../agent/adapters/powershell/runner.ts';
import { powershellScripts, type PowershellScriptName } from '../../../../agent/adapters/powershell/scripts.ts';
import { lastLine, runWithStandIns, type StandInResult, type StandInRun } from '../../../support/powershell-standins.ts';
import { caseParams, type AnyScriptCase } from '../../../support/script-case.ts';
import { crmScriptCases } from '../../script-cases/crm-script-cases.ts';
import { exchangeScriptCases } from '../../script-cases/exchange-script-cases.ts';
import { windowsScriptCases } from '../../script-cases/windows-script-cases.ts';

/**
 * Every script of agent/adapters/powershell/scripts.ts run under pwsh against the stand-ins
 * (test/support/powershell/), all cases in one pwsh process: its last stdout line parses with the
 * table's output schema and equals the case's output, or it exits 1 with the case's error on
 * stderr and no result line; the stand-in calls it made are the case's.
 */
const cases: AnyScriptCase[] = [...crmScriptCases, ...exchangeScriptCases, ...windowsScriptCases];

/**
 * Scripts whose success path needs Windows-only .NET that throws PlatformNotSupportedException on
 * Linux and cannot be shadowed by a stand-in (a static method or a sealed type, not a command):
 * their cases run every path up to that point. Every other script must have a case that prints
 * its JSON.
 */
const windowsOnlySuccess: Partial<Record<PowershellScriptName, string>> = {
  'Test-LocalAdministrator': 'WindowsIdentity.GetCurrent() and WindowsPrincipal.IsInRole',
  'Grant-CertificateKeyAccess': 'the private key (CspKeyContainerInfo / RSACng), NTAccount.Translate and FileSystemAccessRule',
  'Import-S2SCertificate': 'X509Store LocalMachine\\My Add (read-only on Linux) and the KeySpec read-back of the persisted key',
};

let dir = '';
let results: StandInResult[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pwsh-cases-'));
  const runs: StandInRun[] = [];
  for (const [index, scriptCase] of cases.entries()) {
    const paths: Record<string, string> = {};
    for (const [name, bytes] of Object.entries(scriptCase.files ?? {})) {
      paths[name] = join(dir, `${index}-${name}`);
      await writeFile(paths[name], bytes);
    }
    runs.push({ script: join(DEFAULT_SCRIPTS_DIR, `${scriptCase.script}.ps1`), params: caseParams(scriptCase, paths), state: scriptCase.state, env: scriptCase.env ?? {} });
  }
  results = await runWithStandIns(runs);
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const names = Object.keys(powershellScripts) as PowershellScriptName[];

describe('agent/adapters/powershell/*.ps1 under pwsh against the stand-ins', () => {
  it.each(cases.map((c, index) => [`${c.script}: ${c.name}`, index] as const))('%s', (_title, index) => {
    const scriptCase = cases[index];
    const result = results[index];
    if (!scriptCase || !result) throw new Error(`no result for case ${index}`);
    const shown = `exit ${result.exitCode}\nstdout: ${result.stdout.join('\n')}\nstderr: ${result.stderr}`;
    if ('output' in scriptCase.expect) {
      expect(result.exitCode, shown).toBe(0);
      const line = lastLine(result);
      expect(line, shown).toBeDefined();
      const parsed = powershellScripts[scriptCase.script].output.safeParse(JSON.parse(line ?? 'null'));
      expect(parsed.success ? undefined : parsed.error.issues, shown).toBeUndefined();
      expect(parsed.data).toEqual(scriptCase.expect.output);
    } else {
      expect(result.exitCode, shown).toBe(1);
      expect(lastLine(result), shown).toBeUndefined();
      expect(result.stderr.trim()).toMatch(scriptCase.expect.error);
    }
    if (scriptCase.calls) {
      const of = scriptCase.calls.of;
      const made = result.calls.filter((call) => of.includes(call.command));
      expect(made).toHaveLength(scriptCase.calls.are.length);
      expect(made).toMatchObject([...scriptCase.calls.are]);
    }
  });

  it('runs every script of the table, and every one to its JSON unless its success path is Windows-only', () => {
    expect(names.filter((name) => !cases.some((c) => c.script === name))).toEqual([]);
    const printsJson = new Set(cases.filter((c) => 'output' in c.expect).map((c) => c.script));
    expect(names.filter((name) => !printsJson.has(name) && !(name in windowsOnlySuccess))).toEqual([]);
    // An entry here that does print its JSON is out of date.
    expect(Object.keys(windowsOnlySuccess).filter((name) => printsJson.has(name as PowershellScriptName))).toEqual([]);
  });
});
