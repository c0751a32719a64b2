import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRunId } from '../../../../jobs/job-options.ts';
import type { SetupRunResult } from '../../../../jobs/job-types.ts';
import type { CrmSimulator } from '../../../../sim/crm-simulator.ts';
import { SIM_TENANT_ID } from '../../../../sim/s2s-seed.ts';
import { runPayload, startSetupWorld, type SetupWorld } from '../../support/setup-world.ts';

/**
 * A restart-trigger step whose change was made but never journaled (the agent stopped, or the step
 * failed, after the change): the next attempt finds it "already" done, yet the async services never
 * restarted for it. The runner's restart intent keeps the restart owed. Simulated with a
 * Set-S2STenantId that takes effect and answers only after the agent's PowerShell timeout.
 */
let sim: CrmSimulator;
let run: SetupWorld['run'];
let plan: SetupWorld['plan'];
let world: SetupWorld;
const PS_TIMEOUT_MS = 3_000;

beforeAll(async () => {
  world = await startSetupWorld({ seed: 8, mailboxCount: 4, testDelayMs: 20, env: { POWERSHELL_TIMEOUT_MS: String(PS_TIMEOUT_MS) } });
  ({ sim, run, plan } = world);
}, 60_000);

afterAll(async () => {
  await world.close();
});

/** The tenant id the organization holds (read through a function: the test assigns it). */
const organizationTenant = (): string | null => sim.s2s.organization.s2sTenantId;

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
