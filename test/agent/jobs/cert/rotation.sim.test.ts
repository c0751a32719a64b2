import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeLockKey as certLockKey } from '../../../../agent/runtime/change-lock.ts';
import { makeEvaluationPfx } from '../../../../agent/certkit/evaluation-pfx.ts';
import { MailboxTestStatus } from '../../../../jobs/crm-values.ts';
import type { CertPlanResult, CertRollbackResult, CertRotateResult, CertStatusResult, StepState } from '../../../../jobs/cert-types.ts';
import { jobAddOptions, jobIdFor, newRunId, signJob } from '../../../../jobs/job-options.ts';
import type { JobPayload, JobResult, Report } from '../../../../jobs/job-types.ts';
import { startCrmSimulator, type CrmSimulator } from '../../../../sim/crm-simulator.ts';
import { startGraphSimulator, type GraphSimulator } from '../../../../sim/graph-simulator.ts';
import { SIM_GRAPH_CLIENT_ID, SIM_TENANT_ID } from '../../../../sim/s2s-seed.ts';
import { s2sHealth } from '../../../../sim/s2s-state.ts';
import { createHarness, settled, waitFor, type Harness } from '../../support/redis-harness.ts';

/**
 * End to end: signed certificate jobs → Redis → the real agent runtime → the real PowerShell runner
 * running the simulator's stand-in executable (against the CRM simulator's S2S state) and the real
 * Graph client over HTTPS to the Graph simulator (trusted through TLS_CA_FILE) → signed reports.
 */
const PWSH_SIM = fileURLToPath(new URL('../../../../sim/bin/pwsh-sim.mjs', import.meta.url));
const PASSWORD = 'sim-pfx-password-1';
const requestedBy = 'aaaaaaaa-0000-0000-0000-000000000001';
const approvedBy = 'aaaaaaaa-0000-0000-0000-000000000002';

let sim: CrmSimulator;
let graph: GraphSimulator;
let h: Harness;
let certDir: string;
let newThumbprint: string;
let secondThumbprint: string;

beforeAll(async () => {
  sim = await startCrmSimulator({ port: 0, seed: 11, mailboxCount: 60, testDelayMs: 50, certDaysLeft: 20 });
  graph = await startGraphSimulator({ s2s: sim.s2s });
  certDir = await mkdtemp(join(tmpdir(), 'cert-sim-'));
  const next = makeEvaluationPfx({ subject: 'CN=crm-s2s-next.contoso.com, O=Contoso', days: 400, password: PASSWORD });
  const second = makeEvaluationPfx({ subject: 'CN=crm-s2s-second.contoso.com, O=Contoso', days: 400, password: PASSWORD });
  await writeFile(join(certDir, 's2s-new.pfx'), next.pfx);
  await writeFile(join(certDir, 'second.pfx'), second.pfx);
  newThumbprint = next.thumbprint;
  secondThumbprint = second.thumbprint;
  h = await createHarness();
  await h.start(
    {
      CRM_URL: sim.orgUrl,
      TEST_POLL_INTERVAL_MS: '100',
      TEST_TIMEOUT_MS: '20000',
      POWERSHELL: PWSH_SIM,
      POWERSHELL_TIMEOUT_MS: '20000',
      POWERSHELL_PASS_ENV: 'PWSH_SIM_URL',
      ASYNC_SERVERS: 'CRMAPP01,CRMAPP02',
      ASYNC_SERVICE_ACCOUNT: 'CONTOSO\\crmasync',
      CERT_DIR: certDir,
      CERT_PFX_PASSWORD: PASSWORD,
      CERT_VERIFY_MAILBOXES: '5',
      GRAPH_TENANT_ID: SIM_TENANT_ID,
      GRAPH_CLIENT_ID: SIM_GRAPH_CLIENT_ID,
      GRAPH_CLIENT_SECRET: 'sim-client-secret',
      GRAPH_LOGIN_URL: graph.loginUrl,
      GRAPH_URL: graph.graphUrl,
      TLS_CA_FILE: graph.caFile,
    },
    // The stand-in finds the simulator through its environment, as configured for the demo.
    { powershellEnv: { ...process.env, PWSH_SIM_URL: new URL(sim.orgUrl).origin } },
  );
}, 60_000);

afterAll(async () => {
  await h.close();
  await graph.close();
  await sim.close();
  await rm(certDir, { recursive: true, force: true });
});

async function run<R extends JobResult>(payload: JobPayload, attempt = 1): Promise<{ state: string; result: R | undefined; reports: Report[]; failedReason: string | undefined }> {
  // Reports of a run's earlier attempt are there too: wait for this attempt's final one.
  const finals = (kind: 'result' | 'failed') => h.reports.filter((r) => r.runId === payload.runId && r.event.kind === kind).length;
  const before = { result: finals('result'), failed: finals('failed') };
  await h.jobs.add(payload.type, signJob(h.signer, payload), jobAddOptions(payload.runId, payload.type, attempt));
  const { state, job } = await settled(h.jobs, jobIdFor(payload.runId, payload.type, attempt), 60_000);
  const kind = state === 'completed' ? 'result' : 'failed';
  await waitFor(`${kind} report`, () => finals(kind) > before[kind] || undefined, 10_000);
  return { state, result: state === 'completed' ? (job.returnvalue as R) : undefined, reports: h.reports.filter((r) => r.runId === payload.runId), failedReason: job.failedReason };
}

const common = { deployment: 'default', requestedBy } as const;
const health = () => s2sHealth(sim.s2s, Date.now());
const stored = (server: string, thumbprint: string) => sim.s2s.servers.find((s) => s.name === server)?.store.get(thumbprint);
const credentialThumbprints = () => sim.s2s.servicePrincipal.keyCredentials.map((k) => createHash('sha1').update(Buffer.from(k.key, 'base64')).digest('hex').toUpperCase());

describe('certificate rotation against the simulators', () => {
  it('status agrees on the seeded deployment; plan and rotate make the new certificate work everywhere', async () => {
    const status = (await run<CertStatusResult>({ type: 'cert-status', ...common, runId: newRunId() })).result;
    expect(status?.agree, JSON.stringify(status?.findings)).toBe(true);
    expect(status?.daysLeft).toBeGreaterThanOrEqual(19);
    const oldThumbprint = status?.registered?.thumbprint ?? null;
    expect(oldThumbprint).toMatch(/^[0-9A-F]{40}$/);

    const plan = (await run<CertPlanResult>({ type: 'cert-plan', ...common, runId: newRunId() })).result;
    expect(plan).toMatchObject({ blocked: false, next: { thumbprint: newThumbprint }, current: { thumbprint: oldThumbprint } });
    expect(plan?.steps.find((s) => s.id === 'import')?.detail).toBe('would import on CRMAPP01, CRMAPP02');

    const runId = newRunId();
    const { result, reports } = await run<CertRotateResult>({ type: 'cert-rotate', ...common, runId, newThumbprint, oldThumbprint, approvedBy, attempt: 1 });
    expect(result?.outcome, JSON.stringify(result?.steps)).toBe('rotated');
    expect(result?.verification).toMatchObject({ selected: 5, succeeded: 5, failed: 0, noResult: 0 });
    expect(sim.s2s.crmCertificate?.thumbprint).toBe(newThumbprint);
    for (const server of ['CRMAPP01', 'CRMAPP02']) {
      expect(stored(server, newThumbprint)).toMatchObject({ keySpec: 1, hasPrivateKey: true });
      expect(stored(server, newThumbprint)?.keyReaders).toContain('contoso\\crmasync');
    }
    expect(credentialThumbprints()).toEqual([newThumbprint]);
    expect(health()).toEqual({ ok: true });
    expect(reports.some((r) => r.event.kind === 'progress' && r.event.progress.phase === 'step' && (r.event.progress.steps?.length ?? 0) === 9)).toBe(true);
    expect(JSON.stringify(reports)).not.toContain(PASSWORD);
  }, 90_000);

  it('halts on a fault in Import on CRMAPP02 with the step states; the resume completes without importing on CRMAPP01 again', async () => {
    const status = (await run<CertStatusResult>({ type: 'cert-status', ...common, runId: newRunId() })).result;
    const oldThumbprint = status?.registered?.thumbprint ?? null;
    await writeFile(join(certDir, 's2s-new.pfx'), await readFile(join(certDir, 'second.pfx')));
    sim.configureS2S({ faults: [{ target: 'Import-S2SCertificate@CRMAPP02', message: 'CertUtil: -importPFX command FAILED: 0x80070005 (WIN32: 5 ERROR_ACCESS_DENIED)', times: 1 }] });

    const runId = newRunId();
    const payload = { type: 'cert-rotate' as const, ...common, runId, newThumbprint: secondThumbprint, oldThumbprint, approvedBy, attempt: 1 };
    const first = await run<CertRotateResult>(payload);
    expect(first.state).toBe('failed');
    const failed = first.reports.find((r) => r.event.kind === 'failed');
    if (failed?.event.kind !== 'failed') throw new Error('no failed report');
    expect(failed.event.error.code).toBe('POWERSHELL_FAILED');
    expect(failed.event.error.message).toMatch(/failed on CRMAPP02/);
    expect(failed.event.steps?.map((s: StepState) => s.state).slice(0, 3)).toEqual(['done', 'failed', 'pending']);
    const importedAt = stored('CRMAPP01', secondThumbprint);
    expect(importedAt).toBeDefined();
    expect(stored('CRMAPP02', secondThumbprint)).toBeUndefined();

    const second = await run<CertRotateResult>({ ...payload, attempt: 2 }, 2);
    expect(second.result?.outcome, JSON.stringify(second.result?.steps)).toBe('rotated');
    expect(second.result?.steps.find((s) => s.id === 'import')?.detail).toBe('imported on CRMAPP02; already on CRMAPP01');
    expect(stored('CRMAPP01', secondThumbprint)).toBe(importedAt);
    expect(health()).toEqual({ ok: true });
  }, 90_000);

  it('ends verification-failed when key access silently is not applied, and the rollback restores a working deployment', async () => {
    const status = (await run<CertStatusResult>({ type: 'cert-status', ...common, runId: newRunId() })).result;
    const oldThumbprint = status?.registered?.thumbprint ?? '';
    await writeFile(join(certDir, 's2s-new.pfx'), makeEvaluationPfx({ subject: 'CN=crm-s2s-third.contoso.com, O=Contoso', days: 400, password: PASSWORD }).pfx);
    const plan = (await run<CertPlanResult>({ type: 'cert-plan', ...common, runId: newRunId() })).result;
    const thirdThumbprint = plan?.next.thumbprint ?? '';
    sim.configureS2S({ breakage: { keyAccessNotApplied: true } });

    const rotationRunId = newRunId();
    const rotation = (await run<CertRotateResult>({ type: 'cert-rotate', ...common, runId: rotationRunId, newThumbprint: thirdThumbprint, oldThumbprint, approvedBy, attempt: 1 })).result;
    expect(rotation?.outcome).toBe('verification-failed');
    expect(rotation?.steps.find((s) => s.id === 'retire-old')?.state).toBe('skipped');
    expect(health().ok).toBe(false);
    expect(credentialThumbprints()).toContain(oldThumbprint);

    sim.configureS2S({ breakage: { keyAccessNotApplied: false } });
    const rollbackPayload = { type: 'cert-rollback' as const, ...common, rotationRunId, restoreThumbprint: oldThumbprint, failedThumbprint: thirdThumbprint, approvedBy, attempt: 1 };

    // The rollback's approver is its requester: refused on the agent before any script runs.
    const scripts = sim.stats.byMethod['powershell'] ?? 0;
    const selfApproved = await run<CertRollbackResult>({ ...rollbackPayload, runId: newRunId(), approvedBy: requestedBy.toUpperCase() });
    expect(selfApproved.state).toBe('failed');
    const refused = selfApproved.reports.find((r) => r.event.kind === 'failed');
    expect(refused?.event.kind === 'failed' && refused.event.error.code).toBe('TWO_PERSON_RULE');
    expect(sim.stats.byMethod['powershell'] ?? 0).toBe(scripts);

    // CRM has moved on (someone registered another certificate by hand): the rollback is refused, nothing changes.
    const registeredNow = sim.s2s.crmCertificate;
    const byHand = stored('CRMAPP01', newThumbprint);
    if (!registeredNow || !byHand) throw new Error('the simulator lacks the certificates of the earlier tests');
    sim.s2s.crmCertificate = { thumbprint: byHand.thumbprint, subject: byHand.subject, notBefore: byHand.notBefore, notAfter: byHand.notAfter, derBase64: byHand.derBase64, registeredAt: Date.now() };
    const moved = await run<CertRollbackResult>({ ...rollbackPayload, runId: newRunId() });
    expect(moved.state).toBe('failed');
    const movedFailure = moved.reports.find((r) => r.event.kind === 'failed');
    if (movedFailure?.event.kind !== 'failed') throw new Error('no failed report');
    expect(movedFailure.event.error.code).toBe('PLAN_CHANGED');
    expect(movedFailure.event.error.message).toContain(`CRM signs with the certificate ${newThumbprint}`);
    expect(sim.s2s.crmCertificate.thumbprint).toBe(newThumbprint);
    sim.s2s.crmCertificate = registeredNow;

    const credentialsBefore = credentialThumbprints();
    expect(credentialsBefore).toContain(thirdThumbprint);
    const rollback = (await run<CertRollbackResult>({ ...rollbackPayload, runId: newRunId() })).result;
    expect(rollback?.outcome, JSON.stringify(rollback?.steps)).toBe('rolled-back');
    expect(rollback?.verification?.failed).toBe(0);
    expect(sim.s2s.crmCertificate?.thumbprint).toBe(oldThumbprint);
    expect(health()).toEqual({ ok: true });
    // retire-failed: exactly the failed certificate's key credential is gone from Entra.
    expect(rollback?.steps.find((s) => s.id === 'retire-failed')).toMatchObject({ state: 'done', detail: `removed the key credential of ${thirdThumbprint}` });
    expect(credentialThumbprints()).toEqual(credentialsBefore.filter((t) => t !== thirdThumbprint));
  }, 90_000);

  it('blocks the plan of a same-subject renewal (the usual CA renewal) before importing anything', async () => {
    const status = (await run<CertStatusResult>({ type: 'cert-status', ...common, runId: newRunId() })).result;
    const subject = status?.registered?.subject ?? '';
    expect(subject).not.toBe('');
    await writeFile(join(certDir, 'renewal.pfx'), makeEvaluationPfx({ subject, days: 400, password: PASSWORD }).pfx);
    const plan = (await run<CertPlanResult>({ type: 'cert-plan', ...common, runId: newRunId(), file: 'renewal.pfx' })).result;
    expect(plan?.blocked).toBe(true);
    expect(plan?.steps.find((s) => s.id === 'import')).toMatchObject({ state: 'failed' });
    expect(plan?.steps.find((s) => s.id === 'import')?.detail).toMatch(/Set-CrmCertificate finds it by subject name.*do not delete the old one \(a rollback needs it\)\. On CRMAPP01, CRMAPP02$/);
    expect([...(sim.s2s.servers[0]?.store.values() ?? [])].filter((c) => c.subject === subject)).toHaveLength(1);
  }, 60_000);

  it('waits for the deployment lock (retryable, naming the holder), and a resume after a failed verification tests the same mailboxes again', async () => {
    const status = (await run<CertStatusResult>({ type: 'cert-status', ...common, runId: newRunId() })).result;
    const oldThumbprint = status?.registered?.thumbprint ?? null;
    const fourth = makeEvaluationPfx({ subject: 'CN=crm-s2s-fourth.contoso.com, O=Contoso', days: 400, password: PASSWORD });
    await writeFile(join(certDir, 's2s-new.pfx'), fourth.pfx);
    const runId = newRunId();
    const payload = { type: 'cert-rotate' as const, ...common, runId, newThumbprint: fourth.thumbprint, oldThumbprint, approvedBy, attempt: 1 };

    // Another run holds the lock: the job fails retryably (BullMQ will try again) and changes nothing.
    const lockKey = certLockKey(h.prefix, 'default');
    await h.redis.set(lockKey, 'cert-rollback:otherrun01:a1', 'PX', 60_000);
    await h.jobs.add(payload.type, signJob(h.signer, payload), jobAddOptions(runId, payload.type, 1));
    const job = await waitFor('the first try to fail', async () => {
      const j = await h.jobs.getJob(jobIdFor(runId, payload.type, 1));
      return j && (await j.getState()) === 'delayed' ? j : undefined;
    }, 30_000);
    expect(job.failedReason).toContain('the certificate rollback run otherrun01 (attempt 1)');
    expect(stored('CRMAPP01', fourth.thumbprint)).toBeUndefined();
    // The other run ends: the retry (promoted instead of waiting for its backoff) runs the rotation.
    await h.redis.del(lockKey);
    sim.configureS2S({ breakage: { keyAccessNotApplied: true } });
    const failing = () => [...sim.state.mailboxes.values()].filter((m) => m.incomingemailstatus === MailboxTestStatus.Failure).map((m) => m.mailboxid);
    const failedBefore = new Set(failing());
    await job.promote();
    const { state, job: done } = await settled(h.jobs, jobIdFor(runId, payload.type, 1), 60_000);
    expect(state).toBe('completed');
    expect((done.returnvalue as CertRotateResult).outcome).toBe('verification-failed');
    expect(await h.redis.exists(lockKey)).toBe(0);

    // The verification broke these mailboxes; the admin grants the key access by hand and resumes.
    const broken = failing().filter((id) => !failedBefore.has(id));
    expect(broken).toHaveLength(5);
    sim.configureS2S({ breakage: { keyAccessNotApplied: false } });
    for (const server of sim.s2s.servers) server.store.get(fourth.thumbprint)?.keyReaders.push('contoso\\crmasync');
    const resumed = await run<CertRotateResult>({ ...payload, attempt: 2, resumedBy: 'aaaaaaaa-0000-0000-0000-000000000003' }, 2);
    expect(resumed.result?.outcome, JSON.stringify(resumed.result?.steps)).toBe('rotated');
    expect(resumed.result?.verification).toMatchObject({ selected: 5, succeeded: 5 });
    // The same five were tested again (a new selection takes only mailboxes whose last test succeeded).
    for (const id of broken) expect(sim.state.mailboxes.get(id)?.incomingemailstatus).toBe(MailboxTestStatus.Success);
    expect(health()).toEqual({ ok: true });
  }, 120_000);
});
