import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newRunId } from '../../../../jobs/job-options.ts';
import type { SetupPlanResult, SetupRunResult, StatusResult } from '../../../../jobs/job-types.ts';
import { PREPOPULATED_APP_IDS } from '../../../../sim/exchange-online.ts';
import { APPROVED_BY, jobCommon, runPayload, startSetupWorld, type SetupWorld } from '../../support/setup-world.ts';

/**
 * EWS access against the simulated tenant (its Exchange Online: sim/exchange-online.ts), through the
 * real agent, the PowerShell stand-in and the Graph simulator: `ews show|allow` (scope ews), `status`,
 * and the mailbox-level EwsEnabled that configure-mailboxes sets in `run setup`.
 */
let world: SetupWorld;
const CRM_APP = '00000007-0000-0000-c000-000000000000';

beforeAll(async () => {
  world = await startSetupWorld({ seed: 51, mailboxCount: 10, testDelayMs: 30, env: { TEST_POLL_INTERVAL_MS: '50' } });
}, 60_000);

afterAll(async () => {
  await world.close();
});

beforeEach(() => {
  world.sim.reset();
});

async function ewsPlan(): Promise<SetupPlanResult> {
  const out = await world.run<SetupPlanResult>({ type: 'setup-plan', ...jobCommon, runId: newRunId(), scope: 'ews' });
  if (!out.result) throw new Error(`the ews plan failed: ${JSON.stringify(out.reports.at(-1))}`);
  return out.result;
}

const ewsRun = (plan: SetupPlanResult, runId = newRunId()) =>
  ({ type: 'setup-run', ...jobCommon, runId, scope: 'ews', plannedMailboxes: plan.mailboxes, tenantId: plan.tenantId, certThumbprint: plan.certThumbprint, approvedBy: APPROVED_BY, attempt: 1 }) as const;

describe('EWS access for CRM in the simulated tenant', () => {
  it('ews show: blocked, what the step would do, the days left; ews allow: allowed and read back; then already done', async () => {
    const { sim } = world;
    const shown = await ewsPlan();
    expect(shown).toMatchObject({ scope: 'ews', changes: 1, blocked: false, ews: { verdict: 'blocked', organizationEnabled: false, appAllowed: false } });
    expect(shown.steps).toEqual([
      { id: 'ews-access', state: 'pending', detail: expect.stringMatching(/^would add 00000007-0000-0000-c000-000000000000 to EwsAllowedAppIDs and set the organization's EwsEnabled to True \(now False\) in Exchange Online \(it may take up to 24 hours to apply\); \d+ days? left/) as unknown },
    ]);
    expect(sim.counters().changes['Set-EwsAccess']).toBeUndefined();

    const out = await world.run<SetupRunResult>(ewsRun(shown));
    expect(out.state, JSON.stringify(out.reports.at(-1))).toBe('completed');
    expect(out.result?.changed).toEqual(['ews-access']);
    expect(out.result?.steps[0]?.detail).toMatch(/added 00000007-0000-0000-c000-000000000000 to EwsAllowedAppIDs and set EwsEnabled True; Exchange Online can take up to 24 hours/);
    expect(sim.s2s.exchange.ewsEnabled).toBe(true);
    expect(sim.s2s.exchange.ewsAllowedAppIds).toEqual([...PREPOPULATED_APP_IDS, CRM_APP]);
    expect(sim.counters().changes['Set-EwsAccess']).toBe(1);

    const again = await ewsPlan();
    expect(again).toMatchObject({ changes: 0, ews: { verdict: 'allowed', appAllowed: true } });
    expect(again.steps[0]).toMatchObject({ state: 'done', detail: expect.stringMatching(/^already done: Exchange Online allows EWS for CRM/) as unknown });
    // A second approved run changes nothing.
    const twice = await world.run<SetupRunResult>(ewsRun(again));
    expect(twice.result?.changed).toEqual([]);
    expect(sim.counters().changes['Set-EwsAccess']).toBe(1);
  }, 60_000);

  it('ews show is blocked with what to do when Exchange Online PowerShell cannot sign in', async () => {
    world.sim.s2s.exchange.appCanManage = false;
    const shown = await ewsPlan();
    expect(shown.blocked).toBe(true);
    expect(shown.blockers[0]?.message).toMatch(/EWS access in Exchange Online cannot be checked: .*Exchange\.ManageAsApp/);
    expect(shown.ews).toMatchObject({ verdict: 'unknown' });
  }, 60_000);

  it('ews show is blocked when the older EwsApplicationAccessPolicy allows no client, which ews allow cannot change', async () => {
    const { sim } = world;
    Object.assign(sim.s2s.exchange, { ewsEnabled: true, ewsAllowedAppIds: [CRM_APP], ewsApplicationAccessPolicy: 'EnforceAllowList', ewsAllowList: [] });
    const shown = await ewsPlan();
    expect(shown).toMatchObject({ blocked: true, ews: { verdict: 'blocked', appAllowed: true, olderPolicyApplies: true } });
    expect(shown.blockers[0]).toMatchObject({ message: expect.stringMatching(/EnforceAllowList with an empty EwsAllowList/) as unknown, fix: expect.stringMatching(/Set-OrganizationConfig -EwsAllowList/) as unknown });
  }, 60_000);

  it('status reports EWS for the active mailboxes, with the ones Exchange blocks one by one', async () => {
    const { sim } = world;
    const address = [...sim.state.mailboxes.values()].find((m) => m.statecode === 0 && m.emailaddress)?.emailaddress ?? '';
    // The fresh tenant blocks CRM: status says so, with the fix and the days left.
    const before = await world.run<StatusResult>({ type: 'status', ...jobCommon, runId: newRunId() });
    expect(before.result?.ews).toMatchObject({ verdict: 'blocked', appAllowed: false, detail: expect.stringMatching(/blocks EWS for CRM.*\d+ days? left/) as unknown, fix: expect.stringMatching(/ews allow/) as unknown });
    sim.s2s.exchange.ewsEnabled = true;
    sim.s2s.exchange.ewsAllowedAppIds = [CRM_APP];
    sim.s2s.exchange.mailboxEwsDisabled.add(address.toLowerCase());
    sim.s2s.exchange.mailboxEwsDisabled.add('not-in-crm@contoso.com');
    const out = await world.run<StatusResult>({ type: 'status', ...jobCommon, runId: newRunId() });
    expect(out.result?.ews).toMatchObject({ verdict: 'allowed', mailboxesDisabled: 1, disabledSample: [address.toLowerCase()] });
  }, 60_000);

  it('run setup sets EwsEnabled on the selection\'s mailboxes that Exchange blocks one by one, and Test & Enable passes', async () => {
    const { sim } = world;
    const addresses = [...sim.state.mailboxes.values()].filter((m) => m.statecode === 0 && m.emailaddress).slice(0, 2).map((m) => (m.emailaddress ?? '').toLowerCase());
    for (const a of addresses) sim.s2s.exchange.mailboxEwsDisabled.add(a);
    const plan = await world.plan();
    expect(plan.steps.find((s) => s.id === 'configure-mailboxes')?.detail).toMatch(/would set EwsEnabled True on 2 mailboxes in Exchange Online/);
    expect(plan.preflight?.find((c) => c.id === 'ews-mailboxes')).toMatchObject({ status: 'warning', detail: expect.stringMatching(/^2 mailboxes have EwsEnabled False/) as unknown });
    const out = await world.run<SetupRunResult>(runPayload(plan, newRunId()));
    expect(out.state, JSON.stringify(out.reports.at(-1))).toBe('completed');
    expect(out.result?.steps.find((s) => s.id === 'configure-mailboxes')?.detail).toMatch(/set EwsEnabled True on 2 mailboxes in Exchange Online/);
    expect(sim.s2s.exchange.mailboxEwsDisabled.size).toBe(0);
    expect(out.result?.testReport).toMatchObject({ failed: 0, noResult: 0 });
  }, 120_000);
});
