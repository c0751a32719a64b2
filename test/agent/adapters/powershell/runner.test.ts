import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectDerBase64 } from '../../../../agent/certkit/kit.ts';
import { silentLogger } from '../../../../core/logger.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import { createPowershellRunner, DEFAULT_SCRIPTS_DIR, type PowershellRunner } from '../../../../agent/adapters/powershell/runner.ts';
import type { PowershellParams } from '../../../../agent/adapters/powershell/scripts.ts';
import { startCrmSimulator, type CrmSimulator } from '../../../../sim/crm-simulator.ts';
import { CRM_APP_ID, customKeyIdentifierOf, PUBLIC_METADATA_URL, S2S_PRINCIPAL_ID } from '../../../../sim/s2s-seed.ts';
import { s2sHealth } from '../../../../sim/s2s-state.ts';
import { createSimCertificate, simPfx } from '../../../../sim/sim-certificates.ts';

const STAND_IN = fileURLToPath(new URL('../../../../sim/bin/pwsh-sim.mjs', import.meta.url));
const PASSWORD = 'S3cr3t pfx "pass" $word;';
const DAY = 86_400_000;

async function failure(promise: Promise<unknown>): Promise<SetupError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SetupError) return error;
    throw error;
  }
  throw new Error('expected the run to fail');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * A stand-in for powershell.exe that records its argv and environment in FAKE_RECORD and then
 * does what FAKE_MODE says: print FAKE_STDOUT, fail with FAKE_STDERR / FAKE_EXIT, or hang with a
 * grandchild (for the time-out: both must be killed).
 */
const FAKE = `#!/usr/bin/env node
const { writeFileSync } = require('node:fs');
const { spawn } = require('node:child_process');
const record = { argv: process.argv.slice(2), password: process.env.SETUP_PFX_PASSWORD ?? null, env: { ...process.env } };
const mode = process.env.FAKE_MODE ?? 'print';
if (mode === 'hang') {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  record.grandchild = child.pid;
}
writeFileSync(process.env.FAKE_RECORD, JSON.stringify(record));
if (mode === 'print') {
  process.stdout.write('WARNING: something PowerShell says first\\n' + (process.env.FAKE_STDOUT ?? '') + '\\n\\n');
} else if (mode === 'quiet') {
  // prints nothing at all
} else if (mode === 'fail') {
  process.stderr.write(process.env.FAKE_STDERR ?? '');
  process.exitCode = Number(process.env.FAKE_EXIT ?? '1');
} else {
  setInterval(() => {}, 1000);
}
`;

describe('PowerShell runner (fake executable)', () => {
  let dir: string;
  let fake: string;
  let recordFile: string;
  let counter = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ps-runner-'));
    fake = join(dir, 'fake-powershell.cjs');
    await writeFile(fake, FAKE);
    await chmod(fake, 0o755);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The fake's own settings reach it the way a deployment's would: named in passEnv. */
  const FAKE_VARIABLES = ['FAKE_RECORD', 'FAKE_MODE', 'FAKE_STDOUT', 'FAKE_STDERR', 'FAKE_EXIT'];
  function runner(env: Record<string, string>, timeoutMs = 30_000, passEnv: string[] = FAKE_VARIABLES): PowershellRunner {
    recordFile = join(dir, `record-${++counter}.json`);
    return createPowershellRunner({
      executable: fake,
      timeoutMs,
      logger: silentLogger(),
      scriptsDir: '/opt/setup agent/powershell',
      env: { PATH: process.env.PATH ?? '', FAKE_RECORD: recordFile, ...env },
      passEnv,
    });
  }
  type Recorded = { argv: string[]; password: string | null; env: Record<string, string>; grandchild?: number };
  const record = async (): Promise<Recorded> => JSON.parse(await readFile(recordFile, 'utf8')) as Recorded;

  it('passes every value as its own argv entry, verbatim, after the fixed PowerShell options', async () => {
    const run = runner({ FAKE_STDOUT: JSON.stringify({ granted: true, alreadyHad: false }) });
    const params: PowershellParams<'Grant-CertificateKeyAccess'> = {
      ComputerName: 'CRM APP01; Remove-Item C:\\ -Recurse',
      Thumbprint: '"$(Stop-Computer)"',
      ServiceAccount: "CONTOSO\\o'brien $env:USERNAME `whoami` & | > x",
    };
    const output = await run.run('Grant-CertificateKeyAccess', params);
    expect(output).toEqual({ granted: true, alreadyHad: false });
    expect((await record()).argv).toEqual([
      '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass',
      '-File', join('/opt/setup agent/powershell', 'Grant-CertificateKeyAccess.ps1'),
      '-ComputerName', params.ComputerName,
      '-Thumbprint', params.Thumbprint,
      '-ServiceAccount', params.ServiceAccount,
    ]);
  });

  it('puts the PFX password only in the environment, and only for Import-S2SCertificate', async () => {
    const thumbprint = 'A'.repeat(40);
    const importRun = runner({ FAKE_STDOUT: JSON.stringify({ thumbprint, keySpec: 1, alreadyPresent: false }) });
    await importRun.run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: 'C:\\certs\\s2s new.pfx' }, { pfxPassword: PASSWORD });
    const imported = await record();
    expect(imported.password).toBe(PASSWORD);
    expect(imported.argv.join('\n')).not.toContain(PASSWORD);
    expect(imported.argv.some((a) => a.includes('S3cr3t'))).toBe(false);

    // A password in the agent's own environment never reaches a script, nor does one given for a script that takes none.
    const other = runner({ SETUP_PFX_PASSWORD: 'leaked-from-agent-env', FAKE_STDOUT: JSON.stringify({ principalId: null, metadataUrl: null }) });
    await other.run('Get-S2SServerSettings', {}, { pfxPassword: PASSWORD });
    const settings = await record();
    expect(settings.password).toBeNull();
    expect(settings.argv.join('\n')).not.toContain(PASSWORD);
  });

  it('gives a script only the allowlisted variables and passEnv\'s, never the agent\'s secrets', async () => {
    const secrets = {
      CERT_PFX_PASSWORD: 'secret-cert-pfx-password',
      GRAPH_CLIENT_SECRET: 'secret-graph-client-secret',
      JOB_SIGNING_KEY: 'secret-job-signing-key-0123456789abcdef',
      CRM_PASSWORD: 'secret-crm-password',
      REDIS_URL: 'redis://:secret-redis-password@127.0.0.1:6379',
      SETUP_PFX_PASSWORD: 'secret-setup-pfx-password',
    };
    const windows = { SystemRoot: 'C:\\Windows', Path: 'C:\\Windows\\system32', PSModulePath: 'C:\\Program Files\\WindowsPowerShell\\Modules', 'ProgramFiles(x86)': 'C:\\Program Files (x86)', ComSpec: 'C:\\Windows\\system32\\cmd.exe', USERDOMAIN: 'CONTOSO' };
    const thumbprint = 'B'.repeat(40);
    // passEnv naming the secrets (and in another case than the base) still does not pass them.
    const run = runner(
      { ...secrets, ...windows, NODE_OPTIONS: '--require /tmp/evil.js', HOME: '/home/agent', EXTRA_SETTING: 'wanted', FAKE_STDOUT: JSON.stringify({ thumbprint, keySpec: 1, alreadyPresent: false }) },
      30_000,
      [...FAKE_VARIABLES, 'extra_setting', ...Object.keys(secrets), 'crm_password'],
    );
    await run.run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: 'C:\\s2s.pfx' }, { pfxPassword: PASSWORD });
    const { env, password } = await record();
    expect(password).toBe(PASSWORD);
    const dumped = JSON.stringify(env);
    for (const value of Object.values(secrets)) expect(dumped).not.toContain(value);
    expect(env).toMatchObject({ ...windows, EXTRA_SETTING: 'wanted', SETUP_PFX_PASSWORD: PASSWORD });
    // Exactly these, nothing else of the base (NODE_OPTIONS, HOME, the secrets).
    expect(Object.keys(env).sort()).toEqual(['PATH', ...Object.keys(windows), 'EXTRA_SETTING', 'SETUP_PFX_PASSWORD', 'FAKE_RECORD', 'FAKE_STDOUT'].sort());
  });

  it('without passEnv a script gets only the allowlist: the fake\'s own settings do not reach it', async () => {
    const run = runner({ FAKE_MODE: 'quiet', FAKE_STDOUT: '{}' }, 30_000, []);
    // FAKE_RECORD is not passed either, so the fake cannot even record: it fails to start its work.
    const error = await failure(run.run('Get-S2SCertificate', {}));
    expect(error.code).toBe('POWERSHELL_FAILED');
    expect(error.message).toContain('exit code 1');
    await expect(readFile(recordFile, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('passes an empty PFX password: only a missing one is refused', async () => {
    const thumbprint = 'C'.repeat(40);
    const run = runner({ FAKE_STDOUT: JSON.stringify({ thumbprint, keySpec: 1, alreadyPresent: false }) });
    await run.run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: 'C:\\s2s.pfx' }, { pfxPassword: '' });
    const { password, env } = await record();
    expect(password).toBe('');
    expect(env).toHaveProperty('SETUP_PFX_PASSWORD', '');
  });

  it('refuses Import-S2SCertificate without a password, before starting anything', async () => {
    const run = runner({ FAKE_STDOUT: '{}' });
    const error = await failure(run.run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: 'x.pfx' }));
    expect(error.code).toBe('POWERSHELL_FAILED');
    expect(error.message).toContain('needs the PFX password');
    await expect(readFile(recordFile, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('refuses unknown, missing and unsafe parameters without starting the executable', async () => {
    const run = runner({ FAKE_STDOUT: '{}' });
    const unknown = await failure(run.run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01', Force: 'true' } as unknown as PowershellParams<'Restart-CrmAsyncServices'>));
    expect(unknown.message).toContain('-Force');
    const missing = await failure(run.run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: 'A'.repeat(40), ServiceAccount: 'CONTOSO\\crmasync' } as unknown as PowershellParams<'Get-MachineCertificate'>));
    expect(missing.message).toContain('-SubjectDer');
    const newline = await failure(run.run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01\n-Evil x' }));
    expect(newline.message).toMatch(/NUL or line break/);
    const nul = await failure(run.run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01\0' }));
    expect(nul.message).toMatch(/NUL or line break/);
    const dash = await failure(run.run('Restart-CrmAsyncServices', { ComputerName: '-Verbose' }));
    expect(dash.message).toContain("starts with '-'");
    const empty = await failure(run.run('Restart-CrmAsyncServices', { ComputerName: '' }));
    expect(empty.message).toContain('needs a value');
    for (const error of [unknown, missing, newline, nul, dash, empty]) expect(error.code).toBe('POWERSHELL_FAILED');
    await expect(readFile(recordFile, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('gives POWERSHELL_FAILED with the script, exit code and a stderr excerpt without the password', async () => {
    const run = runner({
      FAKE_MODE: 'fail',
      FAKE_EXIT: '3',
      FAKE_STDERR: `Import-S2SCertificate on CRMAPP01: certutil -importpfx -p ${PASSWORD} failed; the password ${PASSWORD} is wrong\n`,
    });
    const error = await failure(run.run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: 'C:\\s2s.pfx' }, { pfxPassword: PASSWORD }));
    expect(error.code).toBe('POWERSHELL_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('Import-S2SCertificate');
    expect(error.message).toContain('exit code 3');
    expect(error.message).toContain('certutil -importpfx');
    expect(error.message).toContain('[redacted]');
    expect(error.message).not.toContain('S3cr3t');
    expect(JSON.stringify(error.details)).not.toContain('S3cr3t');
  });

  it('gives POWERSHELL_FAILED when the last line is not the JSON the script promises', async () => {
    const notJson = await failure(runner({ FAKE_STDOUT: 'Done.' }).run('Get-S2SCertificate', {}));
    expect(notJson.code).toBe('POWERSHELL_FAILED');
    expect(notJson.message).toMatch(/Get-S2SCertificate.*not JSON/);
    const wrongShape = await failure(runner({ FAKE_STDOUT: JSON.stringify({ registered: 'yes', derBase64: null }) }).run('Get-S2SCertificate', {}));
    expect(wrongShape.code).toBe('POWERSHELL_FAILED');
    expect(wrongShape.message).toContain('registered');
    const nothing = await failure(runner({ FAKE_MODE: 'quiet' }).run('Get-S2SCertificate', {}));
    expect(nothing.message).toContain('printed nothing');
  });

  it('kills the script and what it started on time-out: POWERSHELL_TIMEOUT, retryable', async () => {
    const run = runner({ FAKE_MODE: 'hang' }, 60_000);
    const error = await failure(run.run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01' }, { timeoutMs: 5000 }));
    expect(error.code).toBe('POWERSHELL_TIMEOUT');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('Restart-CrmAsyncServices');
    const { grandchild } = await record();
    expect(grandchild).toBeTypeOf('number');
    await eventually(() => !isAlive(grandchild ?? 0), 'the grandchild to be killed');
  });

  it('stops the script when the signal aborts', async () => {
    const run = runner({ FAKE_MODE: 'hang' });
    const controller = new AbortController();
    const pending = run.run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01' }, { signal: controller.signal });
    await eventually(async () => (await readFile(recordFile, 'utf8').catch(() => '')) !== '', 'the fake to start');
    controller.abort(new Error('agent closing'));
    await expect(pending).rejects.toThrow('agent closing');
    const { grandchild } = await record();
    await eventually(() => !isAlive(grandchild ?? 0), 'the grandchild to be killed');
  });

  it('says to set POWERSHELL when the executable does not exist', async () => {
    const run = createPowershellRunner({ executable: join(dir, 'no-such-powershell.exe'), timeoutMs: 5000, logger: silentLogger() });
    const error = await failure(run.run('Get-S2SCertificate', {}));
    expect(error.code).toBe('POWERSHELL_FAILED');
    expect(error.message).toContain(`could not start ${join(dir, 'no-such-powershell.exe')}: set POWERSHELL`);
    expect(error.message).toContain('ENOENT');
  });

  it('defaults to the repository\'s agent/adapters/powershell folder', () => {
    expect(DEFAULT_SCRIPTS_DIR).toBe(fileURLToPath(new URL('../../../../agent/adapters/powershell/', import.meta.url)));
  });
});

describe('PowerShell runner against the simulator (sim/bin/pwsh-sim.mjs)', () => {
  let sim: CrmSimulator;
  let dir: string;
  let ps: PowershellRunner;

  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 10, certDaysLeft: 20 });
    dir = await mkdtemp(join(tmpdir(), 'ps-sim-'));
    ps = createPowershellRunner({
      executable: STAND_IN,
      timeoutMs: 20_000,
      logger: silentLogger(),
      env: { PATH: process.env.PATH ?? '', PWSH_SIM_URL: sim.baseUrl },
      passEnv: ['PWSH_SIM_URL'],
    });
  });
  afterAll(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips every script: a full rotation on the simulated servers leaves S2S healthy', async () => {
    const s2s = sim.s2s;
    const account = s2s.serviceAccount;
    const current = s2s.crmCertificate;
    if (!current) throw new Error('seed has no registered certificate');

    const registered = await ps.run('Get-S2SCertificate', {});
    expect(registered).toEqual({ registered: true, derBase64: current.derBase64 });
    expect(await ps.run('Get-MachineCertificate', { ComputerName: 'crmapp01.contoso.local', Thumbprint: current.thumbprint.toLowerCase(), SubjectDer: subjectDerBase64(current.derBase64), ServiceAccount: account })).toEqual({
      found: true,
      keySpec: 1,
      hasPrivateKey: true,
      serviceAccountCanRead: true,
      duplicateSubject: false,
      services: [{ name: 'MSCRMAsyncService', status: 'Running' }, { name: 'MSCRMAsyncService$maintenance', status: 'Running' }],
    });

    const next = createSimCertificate({ commonName: 'crm-s2s-next.contoso.com', notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 400 * DAY), keyLabel: 'runner-next' });
    const pfxPath = join(dir, 's2s next (2027).pfx');
    await writeFile(pfxPath, simPfx(next, PASSWORD));
    const cerPath = join(dir, 's2s next.cer');
    await writeFile(cerPath, Buffer.from(next.derBase64, 'base64'));

    for (const server of ['CRMAPP01', 'CRMAPP02']) {
      expect(await ps.run('Get-MachineCertificate', { ComputerName: server, Thumbprint: next.thumbprint, SubjectDer: subjectDerBase64(next.derBase64), ServiceAccount: account })).toMatchObject({ found: false, keySpec: null, duplicateSubject: false });
      // A renewal with the current subject would be seen before its import.
      expect(await ps.run('Get-MachineCertificate', { ComputerName: server, Thumbprint: next.thumbprint, SubjectDer: subjectDerBase64(current.derBase64), ServiceAccount: account })).toMatchObject({ found: false, duplicateSubject: true });
      expect(await ps.run('Import-S2SCertificate', { ComputerName: server, PfxPath: pfxPath }, { pfxPassword: PASSWORD })).toEqual({ thumbprint: next.thumbprint, keySpec: 1, alreadyPresent: false });
      expect(await ps.run('Get-MachineCertificate', { ComputerName: server, Thumbprint: next.thumbprint, SubjectDer: subjectDerBase64(next.derBase64), ServiceAccount: account })).toMatchObject({ found: true, keySpec: 1, hasPrivateKey: true, serviceAccountCanRead: false });
      expect(await ps.run('Grant-CertificateKeyAccess', { ComputerName: server, Thumbprint: next.thumbprint, ServiceAccount: account })).toEqual({ granted: true, alreadyHad: false });
    }
    expect(await ps.run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: pfxPath }, { pfxPassword: PASSWORD })).toEqual({ thumbprint: next.thumbprint, keySpec: 1, alreadyPresent: true });
    expect(await ps.run('Grant-CertificateKeyAccess', { ComputerName: 'CRMAPP01', Thumbprint: next.thumbprint, ServiceAccount: account })).toEqual({ granted: true, alreadyHad: true });

    expect(await ps.run('Register-S2SCertificate', { CerPath: cerPath })).toEqual({ thumbprint: next.thumbprint });
    expect(s2s.crmCertificate?.thumbprint).toBe(next.thumbprint);
    expect(s2sHealth(s2s, Date.now())).toMatchObject({ ok: false });

    // The Graph step (another engineer's) adds the key credential; here the state is changed directly.
    s2s.servicePrincipal.keyCredentials.push({
      keyId: '11111111-2222-4333-8444-555555555555',
      type: 'AsymmetricX509Cert',
      usage: 'Verify',
      customKeyIdentifier: customKeyIdentifierOf(next.thumbprint),
      displayName: next.subject,
      startDateTime: next.notBefore,
      endDateTime: next.notAfter,
      key: next.derBase64,
    });
    expect(s2s.servicePrincipal.servicePrincipalNames).toContain(CRM_APP_ID);

    expect(await ps.run('Get-S2SServerSettings', {})).toEqual({ principalId: S2S_PRINCIPAL_ID, metadataUrl: PUBLIC_METADATA_URL });
    expect(await ps.run('Set-S2SServerSettings', { PrincipalId: S2S_PRINCIPAL_ID, MetadataUrl: PUBLIC_METADATA_URL })).toEqual({ changed: false });
    expect(s2sHealth(s2s, Date.now())).toMatchObject({ ok: false, reason: 'services-not-restarted' });
    for (const server of ['CRMAPP01', 'CRMAPP02']) {
      expect(await ps.run('Restart-CrmAsyncServices', { ComputerName: server })).toEqual({
        services: [{ name: 'MSCRMAsyncService', status: 'Running' }, { name: 'MSCRMAsyncService$maintenance', status: 'Running' }],
      });
    }
    expect(s2sHealth(s2s, Date.now())).toEqual({ ok: true });
  });

  it('reports the simulated script\'s error (wrong password, unknown server) as POWERSHELL_FAILED without the password', async () => {
    const next = createSimCertificate({ commonName: 'crm-s2s-other.contoso.com', notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 400 * DAY), keyLabel: 'runner-other' });
    const pfxPath = join(dir, 'other.pfx');
    await writeFile(pfxPath, simPfx(next, PASSWORD));
    const wrong = await failure(ps.run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: pfxPath }, { pfxPassword: 'not the password' }));
    expect(wrong.code).toBe('POWERSHELL_FAILED');
    expect(wrong.message).toContain('The specified network password is not correct');
    expect(wrong.message).not.toContain('not the password');
    expect(sim.s2s.servers[0]?.store.has(next.thumbprint)).toBe(false);

    const unknown = await failure(ps.run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP99' }));
    expect(unknown.message).toContain('Connecting to remote server CRMAPP99 failed');

    const setting = await failure(ps.run('Set-S2SServerSettings', { PrincipalId: 'not-a-guid', MetadataUrl: PUBLIC_METADATA_URL }));
    expect(setting.message).toContain("Cannot validate argument on parameter 'PrincipalId'");
  });

  it('tells the stand-in\'s missing PWSH_SIM_URL as a start-up problem', async () => {
    const bare = createPowershellRunner({ executable: STAND_IN, timeoutMs: 20_000, logger: silentLogger(), env: { PATH: process.env.PATH ?? '' } });
    const error = await failure(bare.run('Get-S2SCertificate', {}));
    expect(error.code).toBe('POWERSHELL_FAILED');
    expect(error.message).toContain('PWSH_SIM_URL is not set');
    // Set in the agent's environment but not named in passEnv (POWERSHELL_PASS_ENV): the script does not get it.
    const unnamed = createPowershellRunner({ executable: STAND_IN, timeoutMs: 20_000, logger: silentLogger(), env: { PATH: process.env.PATH ?? '', PWSH_SIM_URL: sim.baseUrl } });
    expect((await failure(unnamed.run('Get-S2SCertificate', {}))).message).toContain('PWSH_SIM_URL is not set');
  });
});
