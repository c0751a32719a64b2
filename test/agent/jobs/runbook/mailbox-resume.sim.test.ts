import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createChangeLock as createCertLock } from '../../../../agent/runtime/change-lock.ts';
import type { RunbookFacts } from '../../../../agent/steps/step.ts';
import { silentLogger } from '../../../../core/logger.ts';
import { encodeReconfigured, RECONFIGURED_MANY, restoreReconfigured } from '../../../../agent/steps/runbook/mailboxes.ts';
import { EmailRouterAccessApproval as A, StateCode } from '../../../../jobs/crm-values.ts';
import { newRunId } from '../../../../jobs/job-options.ts';
import type { SetupRunResult } from '../../../../jobs/job-types.ts';
import type { CrmSimulator } from '../../../../sim/crm-simulator.ts';
import type { MailboxRecord } from '../../../../sim/sim-state.ts';
import type { Harness } from '../../support/redis-harness.ts';
import { APPROVED_BY, jobCommon, runPayload, startSetupWorld, type SetupWorld } from '../../support/setup-world.ts';

/**
 * The runbook's mailbox steps across attempts and their Test & Enable proof, on the simulator: the
 * mailboxes configure-mailboxes changed are tested by test-enable even when the run halted between
 * the two (the ids are kept in the step journal).
 */
let sim: CrmSimulator;
let h: Harness;
let run: SetupWorld['run'];
let plan: SetupWorld['plan'];
let world: SetupWorld;

beforeAll(async () => {
  world = await startSetupWorld({ seed: 12, mailboxCount: 8, testDelayMs: 20 });
  ({ sim, h, run, plan } = world);
}, 60_000);

afterAll(async () => {
  await world.close();
});

beforeEach(() => {
  sim.reset();
});

const active = (): MailboxRecord[] => [...sim.state.mailboxes.values()].filter((m) => m.statecode === StateCode.Active && m.emailaddress);

async function setUpEverything(): Promise<void> {
  const out = await run<SetupRunResult>(runPayload(await plan(), newRunId()));
  expect(out.state, JSON.stringify(out.reports.at(-1))).toBe('completed');
}

describe('test-enable after a halt between configure-mailboxes and test-enable', () => {
  it('the reconfigured mailboxes are kept in the journal and tested on attempt 2', async () => {
    await setUpEverything();
    // Three mailboxes that passed Test & Enable lose the runbook's profile; one of them needs approval
    // again, and its owner cannot approve: the run halts at approve-email after configuring all three.
    const three = active().slice(0, 3);
    for (const m of three) m._emailserverprofile_value = null;
    const first = three[0];
    if (!first) throw new Error('no mailbox');
    first.emailrouteraccessapproval = A.Empty;
    const owner = sim.state.principals.get(first._ownerid_value);
    if (!owner) throw new Error('no owner');
    owner.hasApprovePrivilege = false;

    const p = await plan();
    expect(p.steps.filter((s) => s.state === 'pending').map((s) => s.id)).toEqual(['configure-mailboxes', 'approve-email', 'test-enable']);
    const runId = newRunId();
    const attempt1 = await run<SetupRunResult>(runPayload(p, runId, 1));
    expect(attempt1.state).toBe('failed');
    const failed = attempt1.reports.find((r) => r.event.kind === 'failed')?.event;
    expect(failed?.kind === 'failed' ? failed.steps?.find((s) => s.id === 'approve-email')?.state : undefined).toBe('failed');

    owner.hasApprovePrivilege = true;
    const attempt2 = await run<SetupRunResult>(runPayload(p, runId, 2), 2);
    expect(attempt2.state, JSON.stringify(attempt2.reports.at(-1))).toBe('completed');
    expect(attempt2.result?.steps.find((s) => s.id === 'configure-mailboxes')?.detail).toMatch(/earlier attempt/);
    // All three were reconfigured by attempt 1: all three are tested, though their last test succeeded.
    expect(attempt2.result?.testReport).toMatchObject({ selected: 3, succeeded: 3 });
    expect(attempt2.result?.changed).toEqual(['configure-mailboxes', 'approve-email', 'test-enable']);
  }, 180_000);

  it('configure-mailboxes failing partway keeps the ones it configured: attempt 2 configures the rest and tests all of them', async () => {
    await setUpEverything();
    const three = active().slice(0, 3);
    for (const m of three) m._emailserverprofile_value = null;
    // One mailbox's update is refused once: attempt 1 configures two of the three and halts.
    sim.configureS2S({ faults: [{ target: 'crm:PATCH mailboxes', message: 'Crm.80048306 insufficient permissions: prvWriteMailbox', status: 403, times: 1 }] });

    const p = await plan();
    const runId = newRunId();
    const attempt1 = await run<SetupRunResult>(runPayload(p, runId, 1));
    expect(attempt1.state).toBe('failed');
    const failed = attempt1.reports.find((r) => r.event.kind === 'failed')?.event;
    expect(failed?.kind === 'failed' ? failed.steps?.find((s) => s.id === 'configure-mailboxes')?.state : undefined).toBe('failed');
    expect(three.filter((m) => m._emailserverprofile_value !== null)).toHaveLength(2);

    const attempt2 = await run<SetupRunResult>(runPayload(p, runId, 2), 2);
    expect(attempt2.state, JSON.stringify(attempt2.reports.at(-1))).toBe('completed');
    expect(attempt2.result?.steps.find((s) => s.id === 'configure-mailboxes')?.detail).toMatch(/configured 1 of/);
    // The two configured by attempt 1 passed Test & Enable before, with no profile since: they are tested again too.
    expect(attempt2.result?.testReport).toMatchObject({ selected: 3, succeeded: 3 });
    expect(three.every((m) => m._emailserverprofile_value !== null)).toBe(true);
  }, 180_000);
});

describe('the smaller scopes and the certificate-change lock', () => {
  it('a profile run while another run holds the lock fails clearly and creates nothing; once free it creates one profile', async () => {
    const lock = createCertLock({ redis: h.redis, prefix: h.prefix, logger: silentLogger() });
    const held = await lock.acquire('default', { type: 'setup-run', runId: 'run0setup01', attempt: 1 });
    const profileRun = (runId: string) => ({ type: 'setup-run', ...jobCommon, runId, scope: 'profile', plannedMailboxes: 0, tenantId: null, certThumbprint: null, approvedBy: APPROVED_BY, attempt: 1 }) as const;
    try {
      const busy = await run<SetupRunResult>(profileRun(newRunId()));
      expect(busy.state).toBe('failed');
      const failed = busy.reports.find((r) => r.event.kind === 'failed')?.event;
      expect(failed?.kind === 'failed' ? failed.error : undefined).toMatchObject({ code: 'STEP_FAILED', message: expect.stringMatching(/run0setup01/) as unknown, hint: expect.stringMatching(/Wait until that run finishes/) as unknown });
      expect(sim.counters().crmWrites['POST emailserverprofiles'] ?? 0).toBe(0);
    } finally {
      await held.release();
    }
    const free = await run<SetupRunResult>(profileRun(newRunId()));
    expect(free.state, JSON.stringify(free.reports.at(-1))).toBe('completed');
    expect(free.result?.changed).toEqual(['email-profile']);
    expect(sim.counters().crmWrites['POST emailserverprofiles'] ?? 0).toBe(1);
  }, 60_000);
});

describe('the reconfigured ids in the journal', () => {
  it('fit as ids, else the "many" marker that makes test-enable test the whole selection', () => {
    const few = ['A0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000002'];
    const facts: RunbookFacts = {};
    restoreReconfigured(facts, encodeReconfigured(few));
    expect([...(facts.reconfigured ?? [])]).toEqual(few.map((id) => id.toLowerCase()));
    expect(facts.reconfiguredAll).toBeUndefined();

    const many = Array.from({ length: 600 }, (_, i) => `a0000000-0000-0000-0000-${String(i).padStart(12, '0')}`);
    const encoded = encodeReconfigured(many);
    expect(encoded).toBe(RECONFIGURED_MANY);
    const manyFacts: RunbookFacts = {};
    restoreReconfigured(manyFacts, encoded);
    expect(manyFacts.reconfiguredAll).toBe(true);
    expect(encodeReconfigured(many.slice(0, 500)).length).toBeLessThanOrEqual(20_000);
  });
});
