import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobAddOptions, jobIdFor, newRunId, signJob } from '../../../jobs/job-options.ts';
import type { JobPayload, JobResult, Report, SetupPlanResult } from '../../../jobs/job-types.ts';
import { startCrmSimulator, type CrmSimulator } from '../../../sim/crm-simulator.ts';
import { writeDemoCertificates } from '../../../sim/demo-certificates.ts';
import { startGraphSimulator, type GraphSimulator } from '../../../sim/graph-simulator.ts';
import { simAgentEnvironment } from '../../../sim/sim-agent-env.ts';
import { createHarness, settled, waitFor, type Harness } from './redis-harness.ts';

/**
 * The runbook's world for the agent's simulator tests: a fresh (unconfigured) simulated deployment,
 * the Graph simulator, the demo certificates and the real agent runtime on Redis (signed jobs in,
 * signed reports out), plus the helpers every such test uses: run a job to its end, plan, and the
 * `setup-run` payload for a plan.
 */
export const REQUESTED_BY = 'aaaaaaaa-0000-0000-0000-000000000001';
export const APPROVED_BY = 'aaaaaaaa-0000-0000-0000-000000000002';
export const jobCommon = { deployment: 'default', requestedBy: REQUESTED_BY } as const;

export interface SetupWorldOptions {
  seed: number;
  mailboxCount: number;
  testDelayMs: number;
  /** Agent settings over the simulator's (for example CERT_LOCK_TTL_MS, POWERSHELL_TIMEOUT_MS). */
  env?: Record<string, string>;
}

export interface JobOutcome<R extends JobResult> {
  state: string;
  result: R | undefined;
  reports: Report[];
}

export interface SetupWorld {
  sim: CrmSimulator;
  graph: GraphSimulator;
  h: Harness;
  /** Queues the signed job (attempt n, no BullMQ retries) and waits for it to settle and its final report. */
  run: <R extends JobResult>(payload: JobPayload, attempt?: number) => Promise<JobOutcome<R>>;
  /** A `setup-plan` of scope setup; throws when it fails. */
  plan: () => Promise<SetupPlanResult>;
  close: () => Promise<void>;
}

/** The `setup-run` payload for a plan, as the bot sends it once the plan is approved. */
export const runPayload = (p: SetupPlanResult, runId: string, attempt = 1) =>
  ({ type: 'setup-run', ...jobCommon, runId, scope: 'setup', plannedMailboxes: p.mailboxes, tenantId: p.tenantId, certThumbprint: p.certThumbprint, approvedBy: APPROVED_BY, attempt }) as const;

export async function startSetupWorld(options: SetupWorldOptions): Promise<SetupWorld> {
  const sim = await startCrmSimulator({ port: 0, seed: options.seed, mailboxCount: options.mailboxCount, testDelayMs: options.testDelayMs, scenario: 'fresh' });
  const graph = await startGraphSimulator({ s2s: sim.s2s });
  const certDir = await mkdtemp(join(tmpdir(), 'setup-world-'));
  const demo = writeDemoCertificates(certDir);
  const h = await createHarness();
  const env = simAgentEnvironment({ crmBaseUrl: sim.baseUrl, certDir, pfxPassword: demo.password, graph });
  await h.start(
    { ...env, CRM_URL: sim.orgUrl, TEST_POLL_INTERVAL_MS: '100', TEST_TIMEOUT_MS: '20000', POWERSHELL_TIMEOUT_MS: '20000', ...options.env },
    { powershellEnv: { ...process.env, PWSH_SIM_URL: sim.baseUrl } },
  );

  async function run<R extends JobResult>(payload: JobPayload, attempt = 1): Promise<JobOutcome<R>> {
    const finals = (kind: 'result' | 'failed') => h.reports.filter((r) => r.runId === payload.runId && r.event.kind === kind).length;
    const before = { result: finals('result'), failed: finals('failed') };
    await h.jobs.add(payload.type, signJob(h.signer, payload), { ...jobAddOptions(payload.runId, payload.type, attempt), attempts: 1 });
    const { state, job } = await settled(h.jobs, jobIdFor(payload.runId, payload.type, attempt), 90_000);
    const kind = state === 'completed' ? 'result' : 'failed';
    await waitFor(`${kind} report`, () => finals(kind) > before[kind] || undefined, 10_000);
    return { state, result: state === 'completed' ? (job.returnvalue as R) : undefined, reports: h.reports.filter((r) => r.runId === payload.runId) };
  }

  async function plan(): Promise<SetupPlanResult> {
    const out = await run<SetupPlanResult>({ type: 'setup-plan', ...jobCommon, runId: newRunId(), scope: 'setup' });
    if (!out.result) throw new Error('the plan failed');
    return out.result;
  }

  async function close(): Promise<void> {
    await h.close();
    await graph.close();
    await sim.close();
    await rm(certDir, { recursive: true, force: true });
  }

  return { sim, graph, h, run, plan, close };
}
