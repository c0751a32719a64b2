import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobAddOptions, jobIdFor, newRunId, signJob } from '../../jobs/job-options.ts';
import type { JobPayload, JobResult, Report, SetupPlanResult, SetupRunResult } from '../../jobs/job-types.ts';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { writeDemoCertificates } from '../../sim/demo-certificates.ts';
import { startGraphSimulator, type GraphSimulator } from '../../sim/graph-simulator.ts';
import { SIM_TENANT_ID } from '../../sim/s2s-seed.ts';
import { simAgentEnvironment } from '../../sim/sim-agent-env.ts';
import { createHarness, settled, waitFor, type Harness } from './support/redis-harness.ts';

/**
 * A restart-trigger step whose change was made but never journaled (the agent stopped, or the step
 * failed, after the change): the next attempt finds it "already" done, yet the async services never
 * restarted for it. The runner's restart intent keeps the restart owed. Simulated with a
 * Set-S2STenantId that takes effect and answers only after the agent's PowerShell timeout.
 */
let sim: CrmSimulator;
let graph: GraphSimulator;
let h: Harness;
let certDir: string;
const requestedBy = 'aaaaaaaa-0000-0000-0000-000000000001';
const approvedBy = 'aaaaaaaa-0000-0000-0000-000000000002';
const common = { deployment: 'default', requestedBy } as const;
const PS_TIMEOUT_MS = 3_000;

beforeAll(async () => {
  sim = await startCrmSimulator({ port: 0, seed: 8, mailboxCount: 4, testDelayMs: 20, scenario: 'fresh' });
  graph = await startGraphSimulator({ s2s: sim.s2s });
  certDir = await mkdtemp(join(tmpdir(), 'setup-intent-'));
  const demo = writeDemoCertificates(certDir);
  h = await createHarness();
  const env = simAgentEnvironment({ crmBaseUrl: sim.baseUrl, certDir, pfxPassword: demo.password, graph });
  await h.start(
    { ...env, CRM_URL: sim.orgUrl, TEST_POLL_INTERVAL_MS: '100', TEST_TIMEOUT_MS: '20000', POWERSHELL_TIMEOUT_MS: String(PS_TIMEOUT_MS) },
    { powershellEnv: { ...process.env, PWSH_SIM_URL: sim.baseUrl } },
  );
}, 60_000);

afterAll(async () => {
  await h.close();
  await graph.close();
  await sim.close();
  await rm(certDir, { recursive: true, force: true });
});

async function run<R extends JobResult>(payload: JobPayload, attempt = 1): Promise<{ state: string; result: R | undefined; reports: Report[] }> {
  const finals = (kind: 'result' | 'failed') => h.reports.filter((r) => r.runId === payload.runId && r.event.kind === kind).length;
  const before = { result: finals('result'), failed: finals('failed') };
  await h.jobs.add(payload.type, signJob(h.signer, payload), { ...jobAddOptions(payload.runId, payload.type, attempt), attempts: 1 });
  const { state, job } = await settled(h.jobs, jobIdFor(payload.runId, payload.type, attempt), 90_000);
  const kind = state === 'completed' ? 'result' : 'failed';
  await waitFor(`${kind} report`, () => finals(kind) > before[kind] || undefined, 10_000);
  return { state, result: state === 'completed' ? (job.returnvalue as R) : undefined, reports: h.reports.filter((r) => r.runId === payload.runId) };
}

async function plan(): Promise<SetupPlanResult> {
  const out = await run<SetupPlanResult>({ type: 'setup-plan', ...common, runId: newRunId(), scope: 'setup' });
  if (!out.result) throw new Error('the plan failed');
  return out.result;
}

/** The tenant id the organization holds (read through a function: the test assigns it). */
const organizationTenant = (): string | null => sim.s2s.organization.s2sTenantId;

const runPayload = (p: SetupPlanResult, runId: string, attempt = 1) =>
  ({ type: 'setup-run', ...common, runId, scope: 'setup', plannedMailboxes: p.mailboxes, tenantId: p.tenantId, certThumbprint: p.certThumbprint, approvedBy, attempt }) as const;

describe('restart owed when a trigger step changed something it did not journal', () => {
  it('tenant-id applied then failed: attempt 2 finds it already set, still lists it changed and restarts the services', async () => {
    const setUp = await run<SetupRunResult>(runPayload(await plan(), newRunId()));
    expect(setUp.state, JSON.stringify(setUp.reports.at(-1))).toBe('completed');

    // Only the tenant id is missing now.
    sim.s2s.organization.s2sTenantId = null;
    const p = await plan();
    expect(p.steps.filter((s) => s.state === 'pending').map((s) => s.id)).toEqual(['tenant-id', 'restart-services']);

    // Set-S2STenantId takes effect, then answers only after the agent gave up on it.
    sim.configureS2S({ faults: [{ target: 'Set-S2STenantId', times: 1, hangMs: PS_TIMEOUT_MS * 3 }] });
    const runId = newRunId();
    const first = await run<SetupRunResult>(runPayload(p, runId, 1));
    expect(first.state).toBe('failed');
    const failed = first.reports.find((r) => r.event.kind === 'failed');
    expect(failed?.event.kind === 'failed' ? failed.event.error.code : undefined).toBe('POWERSHELL_TIMEOUT');
    expect(organizationTenant()?.toLowerCase()).toBe(SIM_TENANT_ID.toLowerCase());
    const restartsBefore = sim.counters().changes['Restart-CrmAsyncServices'] ?? 0;

    const second = await run<SetupRunResult>(runPayload(p, runId, 2), 2);
    expect(second.state, JSON.stringify(second.reports.at(-1))).toBe('completed');
    expect(second.result?.changed).toContain('tenant-id');
    expect(second.result?.changed).toContain('restart-services');
    expect(second.result?.steps.find((s) => s.id === 'restart-services')?.detail).not.toMatch(/not needed/);
    expect(sim.counters().changes['Restart-CrmAsyncServices'] ?? 0).toBeGreaterThan(restartsBefore);
  }, 180_000);
});
