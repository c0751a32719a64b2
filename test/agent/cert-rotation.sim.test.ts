import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvaluationPfx } from '../../agent/evaluation-pfx.ts';
import type { CertPlanResult, CertRollbackResult, CertRotateResult, CertStatusResult, StepState } from '../../jobs/cert-types.ts';
import { jobAddOptions, jobIdFor, newRunId, signJob } from '../../jobs/job-options.ts';
import type { JobPayload, JobResult, Report } from '../../jobs/job-types.ts';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { startGraphSimulator, type GraphSimulator } from '../../sim/graph-simulator.ts';
import { SIM_GRAPH_CLIENT_ID, SIM_TENANT_ID } from '../../sim/s2s-seed.ts';
import { s2sHealth } from '../../sim/s2s-state.ts';
import { createHarness, settled, waitFor, type Harness } from './support/redis-harness.ts';

/**
 * End to end: signed certificate jobs → Redis → the real agent runtime → the real PowerShell runner
 * running the simulator's stand-in executable (against the CRM simulator's S2S state) and the real
 * Graph client over HTTPS to the Graph simulator (trusted through TLS_CA_FILE) → signed reports.
 */
const PWSH_SIM = fileURLToPath(new URL('../../sim/bin/pwsh-sim.mjs', import.meta.url));
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
    const rollback = (
      await run<CertRollbackResult>({ type: 'cert-rollback', ...common, runId: newRunId(), rotationRunId, restoreThumbprint: oldThumbprint, failedThumbprint: thirdThumbprint, approvedBy, attempt: 1 })
    ).result;
    expect(rollback?.outcome, JSON.stringify(rollback?.steps)).toBe('rolled-back');
    expect(rollback?.verification?.failed).toBe(0);
    expect(sim.s2s.crmCertificate?.thumbprint).toBe(oldThumbprint);
    expect(health()).toEqual({ ok: true });
  }, 90_000);
});
