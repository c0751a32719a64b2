import { afterEach, describe, expect, it } from 'vitest';
import { setupStepIds, type SetupPlanResult, type SetupRunResult } from '../../jobs/runbook-types.ts';
import { RunStore } from '../../bot/runs/run-store.ts';
import { checklistInputId } from '../../bot/cards/runbook/setup-plan-card.ts';
import { s2sHealth } from '../../sim/s2s-state.ts';
import { SIM_TENANT_ID } from '../../sim/s2s-seed.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { APPROVER, OPERATOR, startFullStack, type FullStack, type FullStackOptions } from '../support/full-stack.ts';

/**
 * The set-up runbook on real parts, on a fresh (unconfigured) simulated deployment: activities into
 * the real bot, signed jobs over real Redis, the real agent with the PowerShell stand-in, the Graph
 * simulator over HTTPS and the CRM simulator over HTTP. The simulated Test & Enable passes a mailbox
 * only when everything the procedure sets up is in place, so a green report means the steps worked.
 */
let stack: FullStack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const CHECKLIST = { [checklistInputId('hybrid-connector')]: 'true', [checklistInputId('exchange-enabled')]: 'true' };

function fresh(options: FullStackOptions = {}): Promise<FullStack> {
  return startFullStack({
    certs: true,
    ...options,
    sim: { mailboxCount: 40, scenario: 'fresh', ...options.sim },
    agentEnv: { CERT_LOCK_TTL_MS: '3000', ...options.agentEnv },
  });
}

function runIdOf(text: string): string {
  const match = /Run \| ([a-z0-9]{8,32})/.exec(text);
  if (!match?.[1]) throw new Error(`no run id in: ${text}`);
  return match[1];
}

const runsOf = (s: FullStack) => new RunStore({ redis: s.redis, prefix: s.prefix });

async function planOf(s: FullStack, runId: string): Promise<SetupPlanResult> {
  const run = await runsOf(s).get(runId);
  if (run?.plan?.type !== 'setup-plan') throw new Error(`run ${runId} has no runbook plan`);
  return run.plan;
}

async function resultOf(s: FullStack, runId: string): Promise<SetupRunResult> {
  const run = await runsOf(s).get(runId);
  if (run?.result?.type !== 'setup-run') throw new Error(`run ${runId} has no runbook result`);
  return run.result;
}

/** Types a command that plans (`run setup`, `profile create`, …) and waits for its plan card. */
async function plan(s: FullStack, command: string, ready: (text: string) => boolean) {
  const planning = await s.say(OPERATOR, command);
  expect(cardText(cardOf(planning))).toContain('Planning');
  const text = await s.waitForCard(planning.activityId, ready, `the plan card of "${command}"`, 60_000);
  return { cardId: planning.activityId, text, runId: runIdOf(text) };
}

/** `run setup` up to a running run: plan, the requester confirms the checklist, a second person approves. */
async function approvedSetup(s: FullStack) {
  const p = await plan(s, 'run setup', (t) => t.includes('Confirm checklist') || t.includes('Cannot run') || t.includes('Nothing to change'));
  expect(p.text).toContain('Confirm checklist');
  // The approval waits for the checklist.
  const early = await s.click(APPROVER, 'run.approve', p.runId, p.cardId);
  expect(JSON.stringify(early.body)).toContain('confirm the checklist');
  expect((await runsOf(s).get(p.runId))?.state).toBe('awaiting-approval');
  const confirmed = await s.click(OPERATOR, 'setup.confirm-checklist', p.runId, p.cardId, CHECKLIST);
  expect(confirmed.status).toBe(200);
  const approved = await s.click(APPROVER, 'run.approve', p.runId, p.cardId);
  expect(approved.status).toBe(200);
  return p;
}

async function waitForState(s: FullStack, runId: string, states: readonly string[], timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = (await runsOf(s).get(runId))?.state ?? '';
    if (states.includes(state)) return state;
    if (Date.now() > deadline) throw new Error(`run ${runId} did not reach ${states.join(' or ')} within ${timeoutMs} ms (it is ${state || 'missing'})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const mailboxesOf = (s: FullStack) => [...s.sim.state.mailboxes.values()].filter((m) => m.statecode === 0);

describe('run setup on a fresh deployment, end to end', () => {
  it('the dry run lists what the real run then changes; every step ends done with a Test & Enable report; the second run has nothing to change', async () => {
    stack = await fresh();
    const s = stack;
    expect(s2sHealth(s.sim.s2s, Date.now()).ok).toBe(false);

    // The dry run: what would change, no buttons, nothing queued, nothing written.
    const writesBefore = JSON.stringify(s.sim.counters());
    const dry = await plan(s, 'run setup --dry-run', (t) => t.includes('Dry run:'));
    expect(dry.text).toContain('Nothing was changed');
    expect(cardOf(s.connector.updates(dry.cardId).at(-1)).actions ?? []).toHaveLength(0);
    expect((await runsOf(s).get(dry.runId))?.state).toBe('succeeded');
    const dryPlan = await planOf(s, dry.runId);
    expect(JSON.stringify(s.sim.counters())).toBe(writesBefore);
    const wouldChange = dryPlan.steps.filter((st) => st.state === 'pending').map((st) => st.id);
    expect(wouldChange).toEqual(expect.arrayContaining(['import', 'register-crm', 'tenant-id', 'email-profile', 'org-defaults', 'configure-mailboxes', 'approve-email', 'test-enable']));

    // The real run.
    const real = await approvedSetup(s);
    await s.connector.waitFor(
      () => s.connector.posts().some((post) => cardText(cardOf(post)).includes('Test & Enable report')),
      'the results card',
      120_000,
    );
    expect(await waitForState(s, real.runId, ['succeeded'])).toBe('succeeded');
    const result = await resultOf(s, real.runId);
    expect(result.steps.map((st) => st.id)).toEqual(setupStepIds.filter((id) => result.steps.some((st) => st.id === id)));
    expect(result.steps.every((st) => st.state === 'done' || (st.id === 'adfs' && st.state === 'skipped'))).toBe(true);
    // The dry run's plan matches what the real run changed.
    expect([...result.changed].sort()).toEqual([...wouldChange].filter((id) => id !== 'preflight').sort());
    expect(result.testReport?.failed).toBe(0);
    expect(result.testReport?.succeeded).toBe(mailboxesOf(s).length);

    // The world as the procedure wants it.
    expect(s2sHealth(s.sim.s2s, Date.now()).ok).toBe(true);
    const profiles = [...s.sim.state.profiles.values()].filter((p) => p.servertype === 3);
    expect(profiles).toHaveLength(1);
    const profileId = profiles[0]?.emailserverprofileid;
    expect(s.sim.state.organization._defaultemailserverprofileid_value).toBe(profileId);
    expect(s.sim.state.organization.emailconnectionchannel).toBe(0);
    for (const m of mailboxesOf(s)) {
      expect(m._emailserverprofile_value).toBe(profileId);
      expect([m.incomingemaildeliverymethod, m.outgoingemaildeliverymethod, m.actdeliverymethod]).toEqual([2, 2, 1]);
      expect(m.emailrouteraccessapproval).toBe(1);
    }
    expect(s.sim.s2s.organization.s2sTenantId?.toLowerCase()).toBe(SIM_TENANT_ID.toLowerCase());

    // Again: nothing to change, at the plan already; nothing written.
    const counters = JSON.stringify(s.sim.counters());
    const again = await plan(s, 'run setup', (t) => t.includes('Nothing to change') || t.includes('Confirm checklist'));
    expect(again.text).toContain('Nothing to change');
    expect((await planOf(s, again.runId)).changes).toBe(0);
    expect(JSON.stringify(s.sim.counters())).toBe(counters);
  }, 240_000);

  it('a failed step halts the run with the documented remediation; after the fix, Retry step finishes it without redoing the steps done', async () => {
    stack = await fresh();
    const s = stack;
    // The mailbox owners of two mailboxes lack the privileges Test & Enable needs (Crm.80048306).
    const broken = mailboxesOf(s).slice(0, 2).map((m) => m.emailaddress ?? '').filter((a) => a !== '');
    expect(broken).toHaveLength(2);
    s.sim.setKnobs({ ownersWithoutPrivileges: broken });

    const p = await approvedSetup(s);
    expect(await waitForState(s, p.runId, ['halted'])).toBe('halted');
    const halted = await s.waitForCard(p.cardId, (t) => t.includes('Retry step'), 'the halted card');
    expect(halted).toContain('Test & Enable');
    expect(halted).toMatch(/privilege|permission/i);
    const run = await runsOf(s).get(p.runId);
    expect(run?.error?.code).toBe('TEST_ENABLE_FAILED');
    expect(run?.error?.hint ?? '').toMatch(/privilege|permission|owner/i);
    const writes = s.sim.counters();
    const profileCreates = writes.crmWrites['POST emailserverprofiles'] ?? 0;
    const tenantChanges = writes.changes['Set-S2STenantId'] ?? 0;
    expect(profileCreates).toBe(1);
    expect(tenantChanges).toBe(1);

    // A non-approver cannot retry; after the fix an approver can.
    const refused = await s.click(OPERATOR, 'cert.resume', p.runId, p.cardId);
    expect(JSON.stringify(refused.body)).toMatch(/approver/i);
    expect((await runsOf(s).get(p.runId))?.state).toBe('halted');
    s.sim.setKnobs({ ownersWithoutPrivileges: [] });
    await s.click(APPROVER, 'cert.resume', p.runId, p.cardId);
    expect(await waitForState(s, p.runId, ['succeeded'])).toBe('succeeded');
    const result = await resultOf(s, p.runId);
    expect(result.testReport?.failed).toBe(0);
    // Steps done in the first attempt were not done again.
    expect(s.sim.counters().crmWrites['POST emailserverprofiles'] ?? 0).toBe(1);
    expect(s.sim.counters().changes['Set-S2STenantId'] ?? 0).toBe(1);
  }, 240_000);

  it('a rejected tenant ID write halts at tenant-id with the cause; `resume <run>` continues from there', async () => {
    stack = await fresh();
    const s = stack;
    await fetch(`${s.sim.baseUrl}/_sim/s2s/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'Set-S2STenantId', message: 'Set-CrmAdvancedSetting : The caller does not have the Deployment Administrator role.' }),
    });
    const p = await approvedSetup(s);
    expect(await waitForState(s, p.runId, ['halted'])).toBe('halted');
    const run = await runsOf(s).get(p.runId);
    expect(run?.steps?.find((st) => st.id === 'tenant-id')?.state).toBe('failed');
    expect(run?.steps?.filter((st) => st.state === 'done').map((st) => st.id)).toEqual(expect.arrayContaining(['import', 'register-crm', 'entra-key-credential']));
    expect(run?.error?.message).toContain('Deployment Administrator');
    const importsBefore = s.sim.counters().changes['Import-S2SCertificate'] ?? 0;

    const reply = await s.say(APPROVER, `resume ${p.runId}`);
    expect(cardText(cardOf(reply))).toContain(p.runId);
    expect(await waitForState(s, p.runId, ['succeeded'])).toBe('succeeded');
    expect(s.sim.counters().changes['Import-S2SCertificate'] ?? 0).toBe(importsBefore);
    expect((await runsOf(s).get(p.runId))?.attempt).toBe(2);
  }, 240_000);

  it('an agent killed in the middle of a step is replaced; the run completes without making that change twice', async () => {
    stack = await fresh({ agentProcess: true, agentEnv: { AGENT_LOCK_DURATION_MS: '2000' } });
    const s = stack;
    // The tenant ID is written, then the answer is held back long enough to kill the agent meanwhile.
    await fetch(`${s.sim.baseUrl}/_sim/s2s/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'Set-S2STenantId', hangMs: 60_000 }),
    });
    const p = await approvedSetup(s);
    await s.connector.waitFor(() => (s.sim.counters().changes['Set-S2STenantId'] ?? 0) === 1, 'the tenant ID write', 90_000);
    await s.killAgent();
    await s.startAgentProcess();
    expect(await waitForState(s, p.runId, ['succeeded'], 150_000)).toBe('succeeded');
    expect(s.sim.counters().changes['Set-S2STenantId'] ?? 0).toBe(1);
    expect(s.sim.counters().crmWrites['POST emailserverprofiles'] ?? 0).toBe(1);
    const result = await resultOf(s, p.runId);
    expect(result.steps.find((st) => st.id === 'tenant-id')?.state).toBe('done');
  }, 240_000);

  it('the smaller commands: tenant show, tenant set, profile create, configure mailboxes; each plan needs an approver', async () => {
    stack = await fresh();
    const s = stack;
    const show = await plan(s, 'tenant show', (t) => t.includes('Dry run:'));
    expect(show.text).toContain('would');
    expect(s.sim.s2s.organization.s2sTenantId ?? null).toBeNull();

    for (const command of ['tenant set', 'profile create', 'configure mailboxes']) {
      const p = await plan(s, command, (t) => t.includes('Approve') || t.includes('Cannot run'));
      expect(p.text, command).not.toContain('Cannot run');
      await s.click(APPROVER, 'run.approve', p.runId, p.cardId);
      expect(await waitForState(s, p.runId, ['succeeded']), command).toBe('succeeded');
    }
    expect(s.sim.s2s.organization.s2sTenantId?.toLowerCase()).toBe(SIM_TENANT_ID.toLowerCase());
    const profile = [...s.sim.state.profiles.values()].find((pr) => pr.servertype === 3);
    expect(profile).toBeDefined();
    expect(mailboxesOf(s).every((m) => m._emailserverprofile_value === profile?.emailserverprofileid)).toBe(true);
    // profile show now has nothing to change.
    const again = await plan(s, 'profile show', (t) => t.includes('Dry run:'));
    expect(again.text).toContain('every step is already done');
  }, 240_000);
});
