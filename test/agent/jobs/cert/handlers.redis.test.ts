import { randomUUID } from 'node:crypto';
import { access, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectDerBase64 } from '../../../../agent/certkit/kit.ts';
import { changeLockKey as certLockKey, createChangeLock as createCertLock } from '../../../../agent/runtime/change-lock.ts';
import { stepJournalKey as certStepsKey } from '../../../../agent/steps/journal.ts';
import { runJob } from '../../../../agent/jobs/handlers.ts';
import { createLogger, silentLogger } from '../../../../core/logger.ts';
import { connectRedis } from '../../../../core/redis-connection.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import {
  certPlanInputSchema,
  certPlanResultSchema,
  certRollbackResultSchema,
  certRotateResultSchema,
  certStatusResultSchema,
  rollbackStepIds,
  rotationStepIds,
  type StepState,
} from '../../../../jobs/cert-types.ts';
import type { JobPayload, JobResult } from '../../../../jobs/job-types.ts';
import { deletePrefixedKeys } from '../../../support/delete-prefixed-keys.ts';
import { ACCOUNT, certDirWith, certWorld, makePfx, newRunIdForTest, type CertWorld, type Pfx } from '../../support/cert-world.ts';

const common = { deployment: 'default', requestedBy: 'aaaaaaaa-1111-2222-3333-444444444444' } as const;
const approver = 'bbbbbbbb-1111-2222-3333-444444444444';

let redis: Redis;
const prefix = `t-${randomUUID()}`;
let oldCert: Pfx;
let newCert: Pfx;
let weakCert: Pfx;
let otherCert: Pfx;
let renewalCert: Pfx;
let certDir: string;

beforeAll(async () => {
  redis = await connectRedis('redis://127.0.0.1:6379');
  oldCert = makePfx('CN=crm-s2s-2024.contoso.com, O=Contoso', 20);
  newCert = makePfx('CN=crm-s2s-2025.contoso.com, O=Contoso', 400);
  weakCert = makePfx('CN=crm-s2s-weak.contoso.com', 400, { keySize: 1024 });
  otherCert = makePfx('CN=crm-s2s-other.contoso.com', 400);
  // The usual CA renewal: a new key and validity, the subject of the registered certificate.
  renewalCert = makePfx(oldCert.subject, 400);
  certDir = await certDirWith({ 's2s-new.pfx': newCert.pfx, 'weak.pfx': weakCert.pfx, 'other.pfx': otherCert.pfx, 'renewal.pfx': renewalCert.pfx });
});

afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

const world = (settings: Parameters<typeof certWorld>[3] = {}): CertWorld => certWorld(redis, prefix, oldCert, { CERT_DIR: certDir, ...settings });
const run = (w: CertWorld, payload: JobPayload): Promise<JobResult> => runJob(payload, w.ctx);
const failure = async (promise: Promise<unknown>): Promise<SetupError> => {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof SetupError)) throw new Error(`expected a SetupError, got ${String(error)}`);
  return error;
};
const stateOf = (steps: readonly StepState[], id: StepState['id']) => steps.find((s) => s.id === id);

function rotatePayload(runId: string, attempt = 1, overrides: Partial<{ newThumbprint: string; file: string; approvedBy: string; resumedBy: string }> = {}): JobPayload {
  return { type: 'cert-rotate', ...common, runId, newThumbprint: newCert.thumbprint, oldThumbprint: oldCert.thumbprint, approvedBy: approver, attempt, ...overrides };
}

function rollbackPayload(rotationRunId: string, overrides: Partial<{ runId: string; attempt: number; approvedBy: string }> = {}): JobPayload {
  return { type: 'cert-rollback', ...common, runId: newRunIdForTest(), rotationRunId, restoreThumbprint: oldCert.thumbprint, failedThumbprint: newCert.thumbprint, approvedBy: approver, attempt: 1, ...overrides };
}

/** A rotation to newCert whose verification fails (key access silently not applied): the state a rollback is for. */
async function failedRotation(w: CertWorld): Promise<string> {
  const rotationRunId = newRunIdForTest();
  w.s2s.keyAccessNotApplied = true;
  const result = certRotateResultSchema.parse(await run(w, rotatePayload(rotationRunId)));
  expect(result.outcome).toBe('verification-failed');
  w.s2s.keyAccessNotApplied = false;
  return rotationRunId;
}

const mailboxIdsIn = (filter: string | undefined) => [...(filter ?? '').matchAll(/mailboxid eq ([0-9a-f-]{36})/g)].map((m) => m[1]);
const lockKey = certLockKey(prefix, common.deployment);

describe('cert-status', () => {
  it('reads the registration, both servers, Entra and the settings, and agrees on a working deployment', async () => {
    const w = world();
    const result = certStatusResultSchema.parse(await run(w, { type: 'cert-status', ...common, runId: newRunIdForTest() }));
    expect(result.registrationRead).toBe(true);
    expect(result.registered?.thumbprint).toBe(oldCert.thumbprint);
    // Each store is asked about the registered certificate and its own subject.
    expect(w.s2s.calls.filter((c) => c.name === 'Get-MachineCertificate').map((c) => [c.params['Thumbprint'], c.params['SubjectDer']])).toEqual([
      [oldCert.thumbprint, subjectDerBase64(oldCert.derBase64)],
      [oldCert.thumbprint, subjectDerBase64(oldCert.derBase64)],
    ]);
    expect(result.servers.map((s) => [s.server, s.found, s.keySpec, s.serviceAccountCanRead])).toEqual([
      ['CRMAPP01', true, 1, true],
      ['CRMAPP02', true, 1, true],
    ]);
    expect(result.entra?.keyCredentials.map((k) => k.thumbprint)).toEqual([oldCert.thumbprint]);
    expect(result.agree).toBe(true);
    expect(result.daysLeft).toBeGreaterThanOrEqual(19);
    expect(result.daysLeft).toBeLessThanOrEqual(20);
    // 20 days left is under CERT_MIN_DAYS_LEFT (30): a finding with what to do, still agreeing.
    expect(result.findings.map((f) => f.message).join('\n')).toMatch(/expires in \d+ days/);
  });

  it('reports an unreadable server and an unreadable Entra on the card, and fails only when nothing can be read', async () => {
    const w = world();
    w.s2s.fail('Get-MachineCertificate', new SetupError('POWERSHELL_FAILED', 'WinRM cannot process the request.'), { server: 'CRMAPP02' });
    w.s2s.graph.faults.push({ name: 'getCrmServicePrincipal', error: new SetupError('GRAPH_FORBIDDEN', 'Insufficient privileges.'), times: 1 });
    w.s2s.stores.get('CRMAPP01')?.get(oldCert.thumbprint)?.readers.clear();
    const result = certStatusResultSchema.parse(await run(w, { type: 'cert-status', ...common, runId: newRunIdForTest() }));
    expect(result.agree).toBe(false);
    expect(result.servers[1]?.error).toMatch(/WinRM/);
    expect(result.entra).toBeNull();
    const text = result.findings.map((f) => `${f.message} => ${f.fix}`).join('\n');
    expect(text).toMatch(/CRMAPP02 cannot be read.*=> Check PowerShell remoting/);
    expect(text).toMatch(/Entra ID cannot be read.*=> Grant the helper app/);
    expect(text).toMatch(/CONTOSO\\crmasync cannot read the private key on CRMAPP01/);

    const dead = world();
    for (const name of ['Get-S2SCertificate', 'Get-S2SServerSettings'] as const) dead.s2s.fail(name, new SetupError('POWERSHELL_FAILED', 'The term Get-CrmCertificate is not recognized.'));
    dead.s2s.graph.faults.push({ name: 'getCrmServicePrincipal', error: new SetupError('GRAPH_AUTH_FAILED', 'AADSTS7000215'), times: 1 });
    expect((await failure(run(dead, { type: 'cert-status', ...common, runId: newRunIdForTest() }))).code).toBe('POWERSHELL_FAILED');
  });

  it('says the registration is unknown (registrationRead false), not "none", when Get-CrmCertificate fails', async () => {
    const w = world();
    w.s2s.fail('Get-S2SCertificate', new SetupError('POWERSHELL_FAILED', 'The term Get-CrmCertificate is not recognized.'));
    const result = certStatusResultSchema.parse(await run(w, { type: 'cert-status', ...common, runId: newRunIdForTest() }));
    expect(result).toMatchObject({ registrationRead: false, registered: null, daysLeft: null, agree: false });
    const text = result.findings.map((f) => `${f.message} => ${f.fix}`).join('\n');
    expect(text).toMatch(/registered in CRM cannot be read, so which certificate CRM signs with is unknown.*Get-CrmCertificate is not recognized\. => Check that the agent can run the Microsoft\.Crm\.PowerShell snap-in/);
    expect(text).not.toMatch(/No certificate is registered/);

    // Read and empty: registrationRead true, registered null means "none".
    const none = world();
    none.s2s.registered = null;
    const empty = certStatusResultSchema.parse(await run(none, { type: 'cert-status', ...common, runId: newRunIdForTest() }));
    expect(empty).toMatchObject({ registrationRead: true, registered: null });
    expect(empty.findings.map((f) => f.message)).toContain('No certificate is registered as S2STokenIssuer in CRM.');
  });

  it('finds another certificate with the registered one\'s subject in a store, with a fix that keeps the old certificate', async () => {
    const w = world();
    w.s2s.stores.get('CRMAPP01')?.set(renewalCert.thumbprint, { cert: renewalCert, keySpec: 1, hasPrivateKey: true, readers: new Set() });
    const result = certStatusResultSchema.parse(await run(w, { type: 'cert-status', ...common, runId: newRunIdForTest() }));
    expect(result.servers.map((s) => s.duplicateSubject)).toEqual([true, false]);
    const finding = result.findings.find((f) => f.message.includes('same subject'));
    expect(finding?.message).toMatch(/on CRMAPP01: Set-CrmCertificate finds the certificate by subject name/);
    expect(finding?.fix).toMatch(/different subject.*keep the registered one/);
  });

  it('fails with CONFIG_MISSING naming the variables when the agent has no certificate settings', async () => {
    const w = world({ ASYNC_SERVERS: [], ASYNC_SERVICE_ACCOUNT: undefined });
    const error = await failure(run(w, { type: 'cert-status', ...common, runId: newRunIdForTest() }));
    expect(error.code).toBe('CONFIG_MISSING');
    expect(error.message).toMatch(/ASYNC_SERVERS, ASYNC_SERVICE_ACCOUNT/);
    expect(w.s2s.calls).toHaveLength(0);
  });
});

describe('cert-plan', () => {
  it('previews every step with the rotation checks, reading only', async () => {
    const w = world();
    // CRMAPP01 already has the new certificate (an earlier manual import).
    w.s2s.stores.get('CRMAPP01')?.set(newCert.thumbprint, { cert: newCert, keySpec: 1, hasPrivateKey: true, readers: new Set() });
    const plan = certPlanResultSchema.parse(await run(w, { type: 'cert-plan', ...common, runId: newRunIdForTest() }));
    expect(plan).toMatchObject({ file: 's2s-new.pfx', blocked: false, servers: ['CRMAPP01', 'CRMAPP02'], serviceAccount: ACCOUNT, cloud: 'public', verification: { mode: 'sample', mailboxes: 3 } });
    expect(plan.current?.thumbprint).toBe(oldCert.thumbprint);
    expect(plan.next.thumbprint).toBe(newCert.thumbprint);
    expect(plan.steps.map((s) => s.id)).toEqual([...rotationStepIds]);
    expect(stateOf(plan.steps, 'import')).toEqual({ id: 'import', state: 'pending', detail: 'would import on CRMAPP02; already on CRMAPP01' });
    expect(stateOf(plan.steps, 'grant-key-access')?.detail).toBe(`would grant ${ACCOUNT} Read on CRMAPP01, CRMAPP02`);
    expect(stateOf(plan.steps, 'register-crm')?.detail).toBe(`would register ${newCert.thumbprint} (replacing ${oldCert.thumbprint})`);
    expect(stateOf(plan.steps, 'entra-key-credential')?.detail).toBe('would add the key credential');
    expect(stateOf(plan.steps, 's2s-settings')).toMatchObject({ state: 'done', detail: 'already set' });
    expect(stateOf(plan.steps, 'retire-old')?.detail).toContain(oldCert.thumbprint);
    const writes = ['Import-S2SCertificate', 'Grant-CertificateKeyAccess', 'Register-S2SCertificate', 'Set-S2SServerSettings', 'Restart-CrmAsyncServices'];
    expect(w.s2s.calls.filter((c) => writes.includes(c.name))).toEqual([]);
    expect(w.s2s.graph.writes).toEqual([]);
    // The verification set is active approved mailboxes whose last test succeeded.
    expect(w.mail.filters).toContain('statecode eq 0 and emailrouteraccessapproval eq 1 and incomingemailstatus eq 1 and outgoingemailstatus eq 1');
  });

  it('is blocked by an error-severity problem and by another certificate with the same subject', async () => {
    const weak = certPlanResultSchema.parse(await run(world(), { type: 'cert-plan', ...common, runId: newRunIdForTest(), file: 'weak.pfx' }));
    expect(weak.blocked).toBe(true);
    expect(weak.next.problems.some((p) => p.code === 'KEY_TOO_SMALL' && p.severity === 'error')).toBe(true);
    expect(stateOf(weak.steps, 'validate')?.state).toBe('failed');

    // A same-subject renewal (the usual CA renewal): the stores are asked for the new certificate's
    // subject before it is imported, and the plan is blocked with what to do.
    const w = world();
    const renewal = certPlanResultSchema.parse(await run(w, { type: 'cert-plan', ...common, runId: newRunIdForTest(), file: 'renewal.pfx' }));
    expect(w.s2s.calls.filter((c) => c.name === 'Get-MachineCertificate').map((c) => [c.params['Thumbprint'], c.params['SubjectDer']])).toEqual([
      [renewalCert.thumbprint, subjectDerBase64(oldCert.derBase64)],
      [renewalCert.thumbprint, subjectDerBase64(oldCert.derBase64)],
    ]);
    expect(renewal.blocked).toBe(true);
    expect(stateOf(renewal.steps, 'validate')?.state).toBe('pending');
    expect(stateOf(renewal.steps, 'import')).toMatchObject({ state: 'failed' });
    const detail = stateOf(renewal.steps, 'import')?.detail ?? '';
    expect(detail).toMatch(/^cannot rotate: another certificate has this subject\. Set-CrmCertificate finds it by subject name: two with one subject break it \("private key not found"\)\./);
    expect(detail).toMatch(/issued with another subject \(e\.g\. the year in the CN\); do not delete the old one \(a rollback needs it\)\. On CRMAPP01, CRMAPP02$/);

    // A different subject: not blocked.
    expect(certPlanResultSchema.parse(await run(world(), { type: 'cert-plan', ...common, runId: newRunIdForTest() })).blocked).toBe(false);
  });

  it('takes only plain names in CERT_DIR: the schema refuses paths, the handler refuses a link out of the folder and names the files there', async () => {
    expect(certPlanInputSchema.safeParse({ file: '../x.pfx' }).success).toBe(false);
    expect(certPlanInputSchema.safeParse({ file: '/etc/x.pfx' }).success).toBe(false);

    const outside = await mkdtemp(join(tmpdir(), 'outside-'));
    await writeFile(join(outside, 'secret.pfx'), newCert.pfx);
    const dir = await certDirWith({ 'present.pfx': otherCert.pfx });
    await symlink(join(outside, 'secret.pfx'), join(dir, 'escape.pfx'));
    const w = world({ CERT_DIR: dir });
    const escaped = await failure(run(w, { type: 'cert-plan', ...common, runId: newRunIdForTest(), file: 'escape.pfx' }));
    expect(escaped.code).toBe('CERT_FILE_NOT_FOUND');
    expect(escaped.message).toMatch(/not a file inside the agent's CERT_DIR/);

    const missing = await failure(run(w, { type: 'cert-plan', ...common, runId: newRunIdForTest(), file: 'nope.pfx' }));
    expect(missing.code).toBe('CERT_FILE_NOT_FOUND');
    expect(missing.message).toMatch(/There is no nope\.pfx in the agent's CERT_DIR\. CERT_DIR has: .*present\.pfx/);
    expect(missing.hint).toMatch(/Copy the new PFX/);

    const big = await certDirWith({ 'big.pfx': Buffer.alloc(70 * 1024, 1) });
    expect((await failure(run(world({ CERT_DIR: big }), { type: 'cert-plan', ...common, runId: newRunIdForTest(), file: 'big.pfx' }))).code).toBe('CERT_INVALID');
  });
});

describe('cert-rotate', () => {
  it('runs every step (check, then change), reports each state change, and leaves a working deployment', async () => {
    const w = world();
    const runId = newRunIdForTest();
    const result = certRotateResultSchema.parse(await run(w, rotatePayload(runId)));
    expect(result.outcome).toBe('rotated');
    expect(result.steps.map((s) => [s.id, s.state])).toEqual(rotationStepIds.map((id) => [id, 'done']));
    expect(stateOf(result.steps, 'import')?.detail).toBe('imported on CRMAPP01, CRMAPP02');
    expect(stateOf(result.steps, 'retire-old')?.detail).toBe(`removed the key credential of ${oldCert.thumbprint}`);
    expect(result.verification).toMatchObject({ selected: 3, succeeded: 3, failed: 0, noResult: 0 });

    const { s2s } = w;
    expect(s2s.registered?.thumbprint).toBe(newCert.thumbprint);
    for (const store of s2s.stores.values()) {
      expect(store.get(newCert.thumbprint)).toMatchObject({ keySpec: 1, hasPrivateKey: true });
      expect(store.get(newCert.thumbprint)?.readers.has(ACCOUNT.toLowerCase())).toBe(true);
    }
    expect(s2s.graph.thumbprints()).toEqual([newCert.thumbprint]);
    expect(s2s.health(w.ctx.now())).toEqual({ ok: true });
    // The password reached only the import, through the runner's option (never a parameter).
    expect(s2s.calls.filter((c) => c.pfxPassword !== undefined).map((c) => c.name)).toEqual(['Import-S2SCertificate', 'Import-S2SCertificate']);
    expect(JSON.stringify(s2s.calls.map((c) => c.params))).not.toContain('pfx-pass');
    // The temporary .cer is gone.
    expect(s2s.cerPaths).toHaveLength(1);
    await expect(access(s2s.cerPaths[0] ?? '')).rejects.toThrow();
    // A progress report after every change of state, each with every step.
    const stepReports = w.ctx.progress.filter((p) => p.phase === 'step');
    expect(stepReports.length).toBeGreaterThanOrEqual(2 * rotationStepIds.length);
    expect(stepReports.at(-1)).toMatchObject({ done: 9, total: 9 });
    expect(JSON.stringify(w.ctx.progress)).not.toContain('pfx-pass');
    const journal = await redis.hgetall(certStepsKey(prefix, runId));
    expect(Object.keys(journal).filter((k) => k !== '_seq').sort()).toEqual([...rotationStepIds].sort());
    expect(JSON.stringify(journal)).not.toContain('pfx-pass');
  });

  it('refuses with PLAN_CHANGED when the PFX no longer holds the approved certificate, before any change', async () => {
    const w = world();
    const error = await failure(run(w, rotatePayload(newRunIdForTest(), 1, { newThumbprint: otherCert.thumbprint })));
    expect(error.code).toBe('PLAN_CHANGED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/^Step 'Validate the new certificate' failed: s2s-new\.pfx now holds/);
    const steps = error.details?.['steps'] as StepState[];
    expect(steps.map((s) => s.state)).toEqual(['failed', 'pending', 'pending', 'pending', 'pending', 'pending', 'pending', 'pending', 'pending']);
    expect(w.s2s.callsOf('Import-S2SCertificate')).toBe(0);
  });

  it('halts on a failed step with its states and cause, and the resume skips what is done (no second import on CRMAPP01)', async () => {
    const w = world();
    const runId = newRunIdForTest();
    w.s2s.fail('Import-S2SCertificate', new SetupError('POWERSHELL_FAILED', 'CertUtil: -importPFX command FAILED: 0x80070005 (WIN32: 5 ERROR_ACCESS_DENIED)'), { server: 'CRMAPP02' });
    const error = await failure(run(w, rotatePayload(runId, 1)));
    expect(error.code).toBe('POWERSHELL_FAILED');
    expect(error.message).toBe(`Step 'Import into LocalMachine\\My with KeySpec 1 on every async server' failed on CRMAPP02: CertUtil: -importPFX command FAILED: 0x80070005 (WIN32: 5 ERROR_ACCESS_DENIED)`);
    const steps = error.details?.['steps'] as StepState[];
    expect(steps.slice(0, 3).map((s) => s.state)).toEqual(['done', 'failed', 'pending']);
    expect(w.s2s.callsOf('Import-S2SCertificate', 'CRMAPP01')).toBe(1);

    const resumed = certRotateResultSchema.parse(await run(w, rotatePayload(runId, 2)));
    expect(resumed.outcome).toBe('rotated');
    expect(w.s2s.callsOf('Import-S2SCertificate', 'CRMAPP01')).toBe(1);
    expect(w.s2s.callsOf('Import-S2SCertificate', 'CRMAPP02')).toBe(2);
    expect(stateOf(resumed.steps, 'import')?.detail).toBe('imported on CRMAPP02; already on CRMAPP01');
  });

  it('on a later attempt reports done steps as "(earlier attempt)", runs validate and verify again, and restarts only after a new change', async () => {
    const w = world();
    const runId = newRunIdForTest();
    const unavailable = () => new SetupError('GRAPH_REQUEST_FAILED', 'Service unavailable (503).', { retryable: true });
    // The first write (add) fails: the step halts; attempt 2 adds it; its retire-old write fails; attempt 3 finishes.
    w.s2s.graph.faults.push({ name: 'setKeyCredentials', error: unavailable(), times: 1 });
    const first = await failure(run(w, rotatePayload(runId, 1)));
    expect(first.retryable).toBe(true);
    expect(first.details?.['step']).toBe('entra-key-credential');
    // Attempt 2: the add goes through, the retire-old write (the second write) fails.
    let writes = 0;
    const original = w.s2s.graph.setKeyCredentials.bind(w.s2s.graph);
    w.s2s.graph.setKeyCredentials = (id, list) => (++writes === 1 ? original(id, list) : Promise.reject(unavailable()));
    const second = await failure(run(w, rotatePayload(runId, 2)));
    expect(second.details?.['step']).toBe('retire-old');
    w.s2s.graph.setKeyCredentials = original;
    const importsBefore = w.s2s.callsOf('Import-S2SCertificate');
    const restartsBefore = w.s2s.callsOf('Restart-CrmAsyncServices');
    const validatesBefore = w.s2s.callsOf('Get-S2SCertificate');

    const third = certRotateResultSchema.parse(await run(w, rotatePayload(runId, 3)));
    expect(third.outcome).toBe('rotated');
    for (const id of ['import', 'grant-key-access', 'register-crm', 'entra-key-credential', 's2s-settings', 'restart-services'] as const) {
      expect(stateOf(third.steps, id)?.detail).toMatch(/\(earlier attempt\)$/);
    }
    expect(stateOf(third.steps, 'verify')?.detail).not.toMatch(/earlier attempt/);
    expect(w.s2s.callsOf('Import-S2SCertificate')).toBe(importsBefore);
    expect(w.s2s.callsOf('Restart-CrmAsyncServices')).toBe(restartsBefore);
    expect(w.s2s.callsOf('Get-S2SCertificate')).toBeGreaterThan(validatesBefore);
    expect(w.s2s.graph.thumbprints()).toEqual([newCert.thumbprint]);
  });

  it('restarts the services again on resume when a step changed something after their last restart', async () => {
    const w = world();
    const runId = newRunIdForTest();
    certRotateResultSchema.parse(await run(w, rotatePayload(runId, 1)));
    const restarts = w.s2s.callsOf('Restart-CrmAsyncServices');
    // Nothing changed since the restart: a resume skips it with the other done steps.
    const again = certRotateResultSchema.parse(await run(w, rotatePayload(runId, 2)));
    expect(w.s2s.callsOf('Restart-CrmAsyncServices')).toBe(restarts);
    expect(stateOf(again.steps, 'restart-services')?.detail).toMatch(/earlier attempt/);
    // A forged journal entry (no valid MAC) is ignored: the step runs again, and a change it
    // makes is followed by a restart.
    await redis.hset(certStepsKey(prefix, runId), 'register-crm', JSON.stringify({ entry: '{"state":"done","changed":false,"seq":1,"attempt":1}', mac: 'forged' }));
    w.s2s.registered = oldCert;
    const third = certRotateResultSchema.parse(await run(w, rotatePayload(runId, 3)));
    expect(stateOf(third.steps, 'register-crm')?.detail).toBe(`registered ${newCert.thumbprint} (replacing ${oldCert.thumbprint})`);
    expect(w.s2s.callsOf('Restart-CrmAsyncServices')).toBe(restarts + 2);
    expect(stateOf(third.steps, 'restart-services')?.detail).toBe('restarted on CRMAPP01, CRMAPP02');
  });

  it('fails the import with the KeySpec hint when Windows gives the key KeySpec 2', async () => {
    const w = world();
    w.s2s.importKeySpec = 2;
    const error = await failure(run(w, rotatePayload(newRunIdForTest())));
    expect(error.code).toBe('STEP_FAILED');
    expect(error.message).toMatch(/failed on CRMAPP01: the certificate was imported with KeySpec 2/);
    expect(error.hint).toMatch(/certutil -importpfx <file> AT_KEYEXCHANGE/);
    expect(error.retryable).toBe(false);
  });

  it('refuses the import when any server has another certificate of the same subject, before importing anywhere', async () => {
    const w = world();
    // Another certificate issued with the new one's subject (the stores compare the subject Name DER).
    const twin = makePfx(newCert.subject, 300);
    w.s2s.stores.get('CRMAPP02')?.set(twin.thumbprint, { cert: twin, keySpec: 1, hasPrivateKey: true, readers: new Set() });
    const error = await failure(run(w, rotatePayload(newRunIdForTest())));
    expect(error.code).toBe('STEP_FAILED');
    expect(error.message).toMatch(/failed on CRMAPP02: another certificate with the same subject .* is in LocalMachine\\My/);
    expect(error.hint).toMatch(/^Set-CrmCertificate finds the certificate by subject name.*different subject \(for example add the year to the CN\).*do not delete the old certificate \(a rollback needs it\)/);
    expect(w.s2s.callsOf('Import-S2SCertificate')).toBe(0);
    expect(w.s2s.registered?.thumbprint).toBe(oldCert.thumbprint);
  });

  it('fails the Entra step when the new key credential does not show after the write', async () => {
    const w = world();
    w.s2s.graph.dropNewCredentials = true;
    const error = await failure(run(w, rotatePayload(newRunIdForTest())));
    expect(error.code).toBe('GRAPH_REQUEST_FAILED');
    expect(error.details?.['step']).toBe('entra-key-credential');
    expect(w.s2s.graph.thumbprints()).toEqual([oldCert.thumbprint]);
  });

  it('ends verification-failed when the verification set fails (keeping the old credential), and the rollback restores the old certificate', async () => {
    const w = world();
    const rotationRunId = newRunIdForTest();
    w.s2s.keyAccessNotApplied = true;
    const result = certRotateResultSchema.parse(await run(w, rotatePayload(rotationRunId)));
    expect(result.outcome).toBe('verification-failed');
    expect(stateOf(result.steps, 'verify')).toMatchObject({ state: 'failed', detail: '3 of 3 mailboxes failed Test & Enable; most: The async service account cannot read the certificate\'s private key' });
    expect(stateOf(result.steps, 'retire-old')?.state).toBe('skipped');
    expect(result.verification?.failures[0]?.cause).toBe('s2s-key-not-readable');
    expect(w.s2s.graph.thumbprints()).toEqual([oldCert.thumbprint, newCert.thumbprint]);
    expect(w.s2s.health(w.ctx.now()).ok).toBe(false);

    w.s2s.keyAccessNotApplied = false;
    // Credentials the rollback must leave alone: another valid certificate and an expired one.
    const other = w.s2s.graph.credentialOf(otherCert);
    const expired = { ...w.s2s.graph.credentialOf(weakCert), endDateTime: '2020-01-01T00:00:00Z' };
    w.s2s.graph.sp.keyCredentials.push(other, expired);
    const before = structuredClone(w.s2s.graph.sp.keyCredentials);
    const rollback = certRollbackResultSchema.parse(await run(w, rollbackPayload(rotationRunId)));
    expect(rollback.outcome).toBe('rolled-back');
    expect(rollback.steps.map((s) => [s.id, s.state])).toEqual(rollbackStepIds.map((id) => [id, 'done']));
    expect(w.s2s.registered?.thumbprint).toBe(oldCert.thumbprint);
    expect(w.s2s.health(w.ctx.now())).toEqual({ ok: true });
    expect(rollback.verification).toMatchObject({ selected: 3, succeeded: 3 });
    // retire-failed: exactly the failed certificate's key credential is gone; the others are as they were.
    expect(stateOf(rollback.steps, 'retire-failed')?.detail).toBe(`removed the key credential of ${newCert.thumbprint}`);
    expect(w.s2s.graph.sp.keyCredentials).toEqual(before.filter((k) => k.customKeyIdentifier !== Buffer.from(newCert.thumbprint, 'hex').toString('base64')));
    expect(w.s2s.graph.thumbprints()).toEqual([oldCert.thumbprint, otherCert.thumbprint, weakCert.thumbprint]);
    expect(w.s2s.graph.writes).toHaveLength(2);
  });

  it('keeps the failed certificate\'s key credential when the rollback\'s verification fails (retire-failed skipped, saying why)', async () => {
    const w = world();
    const rotationRunId = await failedRotation(w);
    // Still broken after the rollback: someone cleared the S2S server settings meanwhile (the rollback does not set them).
    w.s2s.settings = { principalId: null, metadataUrl: null };
    const rollback = certRollbackResultSchema.parse(await run(w, rollbackPayload(rotationRunId)));
    expect(rollback.outcome).toBe('verification-failed');
    expect(stateOf(rollback.steps, 'retire-failed')).toEqual({ id: 'retire-failed', state: 'skipped', detail: `the verification failed, so the key credential of ${newCert.thumbprint} stays until this is understood` });
    expect(w.s2s.graph.thumbprints()).toContain(newCert.thumbprint);
  });

  it('refuses a rollback with PLAN_CHANGED when CRM signs with a third certificate now, changing nothing', async () => {
    const w = world();
    const rotationRunId = await failedRotation(w);
    // Someone registered another certificate by hand since the rollback was approved.
    w.s2s.registered = otherCert;
    const error = await failure(run(w, rollbackPayload(rotationRunId)));
    expect(error.code).toBe('PLAN_CHANGED');
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      `Step 'Check the old certificate is still in place' failed: CRM signs with the certificate ${otherCert.thumbprint} (${otherCert.subject}) now, not the failed ${newCert.thumbprint} nor the ${oldCert.thumbprint} to restore: the rollback was approved for another state. Nothing was changed.`,
    );
    expect(error.hint).toMatch(/@setup cert status/);
    expect(w.s2s.callsOf('Register-S2SCertificate')).toBe(1);
    expect(w.s2s.callsOf('Restart-CrmAsyncServices')).toBe(2);
    expect(w.s2s.graph.writes).toHaveLength(1);
    expect(w.s2s.registered.thumbprint).toBe(otherCert.thumbprint);

    // What the rollback was approved for: CRM still signs with the failed certificate (or, on a later attempt, the restored one).
    w.s2s.registered = oldCert;
    const again = certRollbackResultSchema.parse(await run(w, rollbackPayload(rotationRunId)));
    expect(again.outcome).toBe('rolled-back');
    expect(stateOf(again.steps, 'register-crm')?.detail).toBe(`${oldCert.thumbprint} is already registered`);
  });

  it('refuses a rollback whose old key credential is gone from Entra, saying what to do', async () => {
    const w = world();
    w.s2s.graph.sp.keyCredentials = [];
    const error = await failure(
      run(w, { type: 'cert-rollback', ...common, runId: newRunIdForTest(), rotationRunId: newRunIdForTest(), restoreThumbprint: oldCert.thumbprint, failedThumbprint: newCert.thumbprint, approvedBy: approver, attempt: 1 }),
    );
    expect(error.code).toBe('STEP_FAILED');
    expect(error.message).toMatch(/^Step 'Check the old certificate is still in place' failed: the certificate .* is known neither/);
    expect(w.s2s.callsOf('Register-S2SCertificate')).toBe(0);
  });

  it('grants the service account Read on the old key where it is not confirmed (reported in validate-old), rather than refusing the rollback', async () => {
    const w = world();
    const rotationRunId = await failedRotation(w);
    // Someone tidied the old key's ACL on CRMAPP02 since: the key is there, the account cannot read it.
    const oldOn02 = w.s2s.stores.get('CRMAPP02')?.get(oldCert.thumbprint);
    oldOn02?.readers.clear();
    const grantsBefore = w.s2s.callsOf('Grant-CertificateKeyAccess');
    const rollback = certRollbackResultSchema.parse(await run(w, rollbackPayload(rotationRunId)));
    expect(rollback.outcome).toBe('rolled-back');
    expect(stateOf(rollback.steps, 'validate-old')?.state).toBe('done');
    expect(stateOf(rollback.steps, 'validate-old')?.detail).toMatch(new RegExp(`^granted ${ACCOUNT.replace(/\\/g, '\\\\')} Read on CRMAPP02; already readable on CRMAPP01; ${oldCert.subject}, valid until `));
    const grants = w.s2s.calls.filter((c) => c.name === 'Grant-CertificateKeyAccess').slice(grantsBefore);
    expect(grants.map((c) => [c.params['ComputerName'], c.params['Thumbprint'], c.params['ServiceAccount']])).toEqual([['CRMAPP02', oldCert.thumbprint, ACCOUNT]]);
    expect(oldOn02?.readers.has(ACCOUNT.toLowerCase())).toBe(true);

    // A server without the old key still refuses the rollback, before any grant anywhere.
    const missing = world();
    const failedRunId = await failedRotation(missing);
    missing.s2s.stores.get('CRMAPP01')?.get(oldCert.thumbprint)?.readers.clear();
    missing.s2s.stores.get('CRMAPP02')?.delete(oldCert.thumbprint);
    const grantsThen = missing.s2s.callsOf('Grant-CertificateKeyAccess');
    const error = await failure(run(missing, rollbackPayload(failedRunId)));
    expect(error.message).toBe(`Step 'Check the old certificate is still in place' failed on CRMAPP02: the old certificate ${oldCert.thumbprint} is no longer in LocalMachine\\My.`);
    expect(missing.s2s.callsOf('Grant-CertificateKeyAccess')).toBe(grantsThen);
  });
});

describe('verification set on resume', () => {
  it('tests again the mailboxes the failed verification tested (not a new selection), then only when none is recorded selects anew', async () => {
    const w = world();
    const runId = newRunIdForTest();
    w.s2s.keyAccessNotApplied = true;
    const first = certRotateResultSchema.parse(await run(w, rotatePayload(runId, 1)));
    expect(first.outcome).toBe('verification-failed');
    const broken = w.mail.mailboxes.filter((m) => m.incomingemailstatus !== 1).map((m) => m.mailboxid);
    expect(broken).toHaveLength(3);
    // The admin fixes the key access by hand and clicks Resume.
    for (const store of w.s2s.stores.values()) store.get(newCert.thumbprint)?.readers.add(ACCOUNT.toLowerCase());
    w.s2s.keyAccessNotApplied = false;
    const filtersBefore = w.mail.filters.length;
    const resumed = certRotateResultSchema.parse(await run(w, rotatePayload(runId, 2, { resumedBy: 'cccccccc-1111-2222-3333-444444444444' })));
    expect(resumed.outcome).toBe('rotated');
    expect(resumed.verification).toMatchObject({ selected: 3, succeeded: 3 });
    const byId = w.mail.filters.slice(filtersBefore).filter((f) => f.includes('mailboxid eq'));
    expect(byId.map(mailboxIdsIn)).toEqual([broken]);
    // A new selection (mailboxes whose last test succeeded) would have skipped exactly those three.
    expect(w.mail.filters.slice(filtersBefore)).not.toContain('statecode eq 0 and emailrouteraccessapproval eq 1 and incomingemailstatus eq 1 and outgoingemailstatus eq 1');
    expect(w.mail.mailboxes.filter((m) => broken.includes(m.mailboxid)).every((m) => m.incomingemailstatus === 1)).toBe(true);

    // A first attempt has nothing recorded: it selects by CERT_VERIFY_MAILBOXES.
    const fresh = world();
    await run(fresh, rotatePayload(newRunIdForTest(), 1));
    expect(fresh.mail.filters.some((f) => f.includes('mailboxid eq'))).toBe(false);
  });
});

describe('guards of a certificate change', () => {
  it('refuses a rotation or rollback approved by its requester (any case) or by nobody, before any step (TWO_PERSON_RULE)', async () => {
    for (const approvedBy of [common.requestedBy, common.requestedBy.toUpperCase(), ` ${common.requestedBy} `, '']) {
      const w = world();
      const error = await failure(run(w, rotatePayload(newRunIdForTest(), 1, { approvedBy })));
      expect(error.code).toBe('TWO_PERSON_RULE');
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/^This certificate rotation was (approved by the person who asked for it|not approved by anyone); .* Nothing was changed\.$/);
      expect(w.s2s.calls).toEqual([]);
      expect(w.ctx.progress).toEqual([]);
    }
    const w = world();
    const error = await failure(run(w, rollbackPayload(newRunIdForTest(), { approvedBy: common.requestedBy.toUpperCase() })));
    expect(error.code).toBe('TWO_PERSON_RULE');
    expect(error.message).toMatch(/^This certificate rollback was approved by the person who asked for it/);
    expect(w.s2s.calls).toEqual([]);
    expect(await redis.exists(lockKey)).toBe(0);
  });

  it('logs who resumed a rotation next to who approved it', async () => {
    const w = world();
    const lines: string[] = [];
    w.ctx.logger = createLogger({ name: 't', destination: { write: (line: string) => lines.push(line) } });
    const runId = newRunIdForTest();
    await run(w, rotatePayload(runId, 1));
    await run(w, rotatePayload(runId, 2, { resumedBy: 'cccccccc-1111-2222-3333-444444444444' }));
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => typeof e['msg'] === 'string' && e['msg'].startsWith('certificate change'));
    expect(entries.map((e) => [e['msg'], e['attempt'], e['approvedBy'], e['resumedBy']])).toEqual([
      ['certificate change starting', 1, approver, undefined],
      ['certificate change resumed', 2, approver, 'cccccccc-1111-2222-3333-444444444444'],
    ]);
  });

  it('holds the deployment lock while a rotation runs (renewed, run+attempt+token as value) and releases it at the end, also on failure', async () => {
    const w = world();
    const runId = newRunIdForTest();
    const seen: { value: string | null; renewed: boolean; pttl: number }[] = [];
    w.s2s.beforeImport = async () => {
      if (seen.length > 0) return;
      await redis.pexpire(lockKey, 5_000);
      w.renewals.forEach((renew) => renew());
      // Same connection as the lock's: the renewal's command runs before this PTTL.
      seen.push({ value: await redis.get(lockKey), renewed: w.renewals.length === 1, pttl: await redis.pttl(lockKey) });
    };
    certRotateResultSchema.parse(await run(w, rotatePayload(runId, 1)));
    expect(seen).toHaveLength(1);
    expect(seen[0]?.value).toMatch(new RegExp(`^cert-rotate:${runId}:a1:[0-9a-f]{16}$`));
    expect(seen[0]?.renewed).toBe(true);
    expect(seen[0]?.pttl).toBeGreaterThan(5_000);
    expect(seen[0]?.pttl).toBeLessThanOrEqual(120_000);
    expect(await redis.exists(lockKey)).toBe(0);
    expect(w.renewals).toHaveLength(0);

    const failing = world();
    failing.s2s.importKeySpec = 2;
    await failure(run(failing, rotatePayload(newRunIdForTest())));
    expect(await redis.exists(lockKey)).toBe(0);
    expect(failing.renewals).toHaveLength(0);
  });

  it('refuses a rotation or rollback while another run holds the lock (retryable, naming it), and so another processing of its own attempt', async () => {
    const other = newRunIdForTest();
    const held = `cert-rollback:${other}:a2:0123456789abcdef`;
    await redis.set(lockKey, held, 'PX', 60_000);
    try {
      const w = world();
      const error = await failure(run(w, rotatePayload(newRunIdForTest())));
      expect(error.code).toBe('STEP_FAILED');
      expect(error.retryable).toBe(true);
      expect(error.message).toBe(`Another change is running on the deployment "default": the certificate rollback run ${other} (attempt 2). Certificate rotations, rollbacks and set-up runs (run setup, profile create, tenant set, configure mailboxes) go one at a time; nothing was changed.`);
      expect(w.s2s.calls).toEqual([]);
      const rollbackError = await failure(run(w, rollbackPayload(newRunIdForTest())));
      expect(rollbackError.message).toContain(`rollback run ${other} (attempt 2)`);

      // The same run's next attempt is another holder too: it waits for attempt 2 like anyone else.
      const sameRunNext = await failure(run(w, { ...rollbackPayload(newRunIdForTest(), { attempt: 3 }), runId: other }));
      expect(sameRunNext.retryable).toBe(true);
      expect(sameRunNext.message).toContain(`rollback run ${other} (attempt 2)`);

      // Attempt 2 itself, processed again (a stalled job handed to another worker, or a retry after
      // a crash): another token, so busy too until the holder releases it or its lock expires.
      const again = await failure(run(w, { ...rollbackPayload(newRunIdForTest(), { attempt: 2 }), runId: other }));
      expect(again.retryable).toBe(true);
      expect(again.message).toMatch(/: this same run and attempt, in another processing of the job \(.*expires within 120 s\)\. Certificate rotations, rollbacks and set-up runs \(run setup, profile create, tenant set, configure mailboxes\) go one at a time; nothing was changed\.$/);
      expect(w.s2s.calls).toEqual([]);
      expect(await redis.get(lockKey)).toBe(held);
    } finally {
      await redis.del(lockKey);
    }
  });

  it('refuses a second processing of the same attempt while the first runs; the first finishes and releases only its own lock', async () => {
    const first = world();
    const second = world();
    const runId = newRunIdForTest();
    let refused: SetupError | undefined;
    let during: string | null = null;
    first.s2s.beforeImport = async () => {
      if (refused) return;
      during = await redis.get(lockKey);
      refused = await failure(run(second, rotatePayload(runId, 1)));
    };
    const result = certRotateResultSchema.parse(await run(first, rotatePayload(runId, 1)));
    expect(result.outcome).toBe('rotated');
    expect(refused?.code).toBe('STEP_FAILED');
    expect(refused?.retryable).toBe(true);
    expect(refused?.message).toMatch(/this same run and attempt, in another processing of the job/);
    expect(refused?.details?.['lockHolder']).toBe(during);
    // The second did nothing, not even a check, and left the first's lock in place.
    expect(second.s2s.calls).toEqual([]);
    expect(second.ctx.progress).toEqual([]);
    expect(second.renewals).toHaveLength(0);
    expect(first.s2s.calls.filter((c) => c.name === 'Register-S2SCertificate')).toHaveLength(1);
    expect(await redis.exists(lockKey)).toBe(0);
  });

  it('stops a rotation whose lock renewal finds the lock gone: the next step does not start, the job fails retryably, the other holder keeps the lock', async () => {
    const w = world();
    const runId = newRunIdForTest();
    const taker = `cert-rollback:${newRunIdForTest()}:a1:fedcba9876543210`;
    w.s2s.beforeImport = async () => {
      // The lock expired (this agent stalled) and another change took it; then the renewal runs.
      await redis.set(lockKey, taker, 'PX', 60_000);
      w.renewals.forEach((renew) => renew());
      await redis.ping();
      await new Promise((resolve) => setImmediate(resolve));
    };
    try {
      const error = await failure(run(w, rotatePayload(runId, 1)));
      expect(error.code).toBe('STEP_FAILED');
      expect(error.retryable).toBe(true);
      expect(error.message).toBe('The certificate-change lock of the deployment "default" was lost while this job ran (it expired or another holder has it), so it stops here: its next step does not start.');
      // The import that was running finished; nothing after it started.
      const names = w.s2s.calls.map((c) => c.name);
      expect(names).toContain('Import-S2SCertificate');
      expect(names).not.toContain('Grant-CertificateKeyAccess');
      expect(names).not.toContain('Register-S2SCertificate');
      expect(w.s2s.registered?.thumbprint).toBe(oldCert.thumbprint);
      const last = w.ctx.progress.at(-1);
      const steps = (last?.phase === 'step' ? last.steps : undefined) ?? [];
      expect(stateOf(steps, 'import')?.state).toBe('done');
      expect(stateOf(steps, 'grant-key-access')?.state).toBe('pending');
      // Released by compare-and-delete: the taker's lock stays; the renewal stopped.
      expect(await redis.get(lockKey)).toBe(taker);
      expect(w.renewals).toHaveLength(0);
    } finally {
      await redis.del(lockKey);
    }

    // A later attempt checks every step again and goes on where it stopped.
    const resumed = certRotateResultSchema.parse(await run(w, rotatePayload(runId, 2)));
    expect(resumed.outcome).toBe('rotated');
    expect(stateOf(resumed.steps, 'import')?.detail).toMatch(/\(earlier attempt\)$/);
    expect(w.s2s.registered?.thumbprint).toBe(newCert.thumbprint);
  });

  it('lock: compare-and-delete and compare-and-renew leave another holder\'s lock alone', async () => {
    const tokens = ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb'];
    const lock = createCertLock({ redis, prefix, logger: silentLogger(), ttlMs: 60_000, schedule: () => () => undefined, token: () => tokens.shift() ?? 'cccccccccccccccc' });
    const deployment = `d-${newRunIdForTest()}`;
    const key = certLockKey(prefix, deployment);
    const owner = { type: 'cert-rotate', runId: 'aaaaaaaa1', attempt: 1 } as const;
    const held = await lock.acquire(deployment, owner);
    expect(await redis.get(key)).toBe('cert-rotate:aaaaaaaa1:a1:aaaaaaaaaaaaaaaa');
    expect(await redis.pttl(key)).toBeGreaterThan(50_000);
    expect(await held.renew()).toBe(true);
    expect(held.signal.aborted).toBe(false);
    // It expired and another processing of the same attempt took it: this holder neither renews nor deletes it.
    await redis.del(key);
    const again = await lock.acquire(deployment, owner);
    expect(await redis.get(key)).toBe('cert-rotate:aaaaaaaa1:a1:bbbbbbbbbbbbbbbb');
    expect(await held.renew()).toBe(false);
    expect(held.signal.aborted).toBe(true);
    await held.release();
    expect(await redis.get(key)).toBe('cert-rotate:aaaaaaaa1:a1:bbbbbbbbbbbbbbbb');
    expect(again.signal.aborted).toBe(false);
    await again.release();
    expect(await redis.exists(key)).toBe(0);
  });

  it('imports a private 0600 copy of the validated bytes, removed afterwards: a PFX swapped in CERT_DIR after the validation is not imported', async () => {
    const dir = await certDirWith({ 's2s-new.pfx': newCert.pfx });
    const w = world({ CERT_DIR: dir });
    w.s2s.beforeImport = async () => {
      await writeFile(join(dir, 's2s-new.pfx'), otherCert.pfx);
    };
    const result = certRotateResultSchema.parse(await run(w, rotatePayload(newRunIdForTest())));
    expect(result.outcome).toBe('rotated');
    expect(w.s2s.registered?.thumbprint).toBe(newCert.thumbprint);
    for (const store of w.s2s.stores.values()) expect([...store.keys()].sort()).toEqual([oldCert.thumbprint, newCert.thumbprint].sort());
    expect(w.s2s.pfxPaths).toHaveLength(2);
    for (const { path, mode } of w.s2s.pfxPaths) {
      expect(path.startsWith(dir)).toBe(false);
      expect(mode).toBe(0o600);
      await expect(access(path)).rejects.toThrow();
    }
    expect(await readFile(join(dir, 's2s-new.pfx'))).toEqual(otherCert.pfx);

    // Removed on failure too.
    const failing = world();
    failing.s2s.fail('Import-S2SCertificate', new SetupError('POWERSHELL_FAILED', 'CertUtil: -importPFX command FAILED'));
    await failure(run(failing, rotatePayload(newRunIdForTest())));
    expect(failing.s2s.calls.filter((c) => c.name === 'Import-S2SCertificate')).toHaveLength(1);
    const attempted = failing.s2s.calls.find((c) => c.name === 'Import-S2SCertificate')?.params['PfxPath'] ?? '';
    expect(attempted).toMatch(/setup-pfx-/);
    await expect(access(attempted)).rejects.toThrow();
  });
});
