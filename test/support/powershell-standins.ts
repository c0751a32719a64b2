import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { runPwshFile } from './pwsh.ts';

const RUN_CASES = fileURLToPath(new URL('./powershell/run-cases.ps1', import.meta.url));

/** The stand-ins' state (test/support/powershell/*-standins.ps1 say what each key means). */
export interface StandInState {
  crm?: {
    snapinInstalled?: boolean;
    organizations?: Array<{ Id: string; UniqueName: string; FriendlyName?: string; State?: string; Version?: string }>;
    serverSettings?: Record<string, string | null>;
    /** Keyed by the organization id in lower case. */
    organizationSettings?: Record<string, Record<string, string | null>>;
    certificates?: Array<{ CertificateType: string; Data?: string; Thumbprint?: string; StoreName?: string; StoreLocation?: string }>;
    ignoreWrites?: boolean;
  };
  exchange?: {
    moduleInstalled?: boolean;
    connectError?: string;
    organizationConfig?: {
      EwsEnabled?: boolean | null;
      EwsApplicationAccessPolicy?: 'EnforceAllowList' | 'EnforceBlockList' | null;
      EwsAllowList?: string[];
      EwsBlockList?: string[];
      EwsAllowedAppIDs?: string[];
    };
    mailboxes?: Array<{ Identity: string; PrimarySmtpAddress: string; EwsEnabled?: boolean | null }>;
  };
  windows?: {
    /** This machine ($env:COMPUTERNAME); default CRMAPP01. */
    computerName?: string;
    /** This machine and the servers Invoke-Command reaches. */
    computers?: Record<string, {
      services?: Record<string, string>;
      restartStatus?: string;
      /** LocalMachine\My, public certificates only (no private key can be simulated on Linux). */
      certificates?: Array<{ derBase64: string }>;
    }>;
  };
}

/** One script run: a .ps1 file, its named parameters, the stand-ins' state and environment variables (null removes one). */
export interface StandInRun {
  script: string;
  params: Readonly<Record<string, string>>;
  state: StandInState;
  env?: Readonly<Record<string, string | null>>;
}

const callSchema = z.object({ command: z.string(), args: z.unknown() });
const resultSchema = z.object({
  exitCode: z.number().int(),
  stdout: z.array(z.string()),
  stderr: z.string(),
  calls: z.array(callSchema),
  state: z.record(z.string(), z.unknown()),
});

export type StandInCall = z.infer<typeof callSchema>;
export type StandInResult = z.infer<typeof resultSchema>;

/**
 * Runs the scripts under pwsh against the stand-ins, all in one pwsh process
 * (test/support/powershell/run-cases.ps1): exit code, stdout lines, stderr, the stand-in calls
 * made and the state afterwards, in the order of `runs`.
 */
export async function runWithStandIns(runs: readonly StandInRun[]): Promise<StandInResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'pwsh-standins-'));
  try {
    const casesFile = join(dir, 'cases.json');
    const resultFile = join(dir, 'results.json');
    await writeFile(casesFile, JSON.stringify(runs.map((run, id) => ({ id, script: run.script, params: run.params, state: run.state, env: run.env ?? {} }))));
    const pwsh = await runPwshFile(RUN_CASES, ['-CasesFile', casesFile, '-ResultFile', resultFile], 120_000);
    if (pwsh.code !== 0) throw new Error(`run-cases.ps1 failed (exit ${pwsh.code}): ${pwsh.stderr}${pwsh.stdout}`);
    const results = z.array(resultSchema).parse(JSON.parse(await readFile(resultFile, 'utf8')));
    if (results.length !== runs.length) throw new Error(`run-cases.ps1 returned ${results.length} results for ${runs.length} runs`);
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The last non-empty stdout line, as the agent's runner reads a script's result. */
export function lastLine(result: StandInResult): string | undefined {
  return result.stdout.map((line) => line.trim()).filter((line) => line !== '').at(-1);
}
