import { PREPOPULATED_APP_IDS } from '../../../../sim/exchange-online.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { auditKey } from '../../../../core/audit-log.ts';
import { newRunId } from '../../../../jobs/job-options.ts';
import type { PreflightResult, Report, SetupRunResult } from '../../../../jobs/job-types.ts';
import type { CrmSimulator } from '../../../../sim/crm-simulator.ts';
import { SIM_TENANT_ID } from '../../../../sim/s2s-seed.ts';
import { s2sHealth } from '../../../../sim/s2s-state.ts';
import type { Harness } from '../../support/redis-harness.ts';
import { jobCommon, runPayload, startSetupWorld, type SetupWorld } from '../../support/setup-world.ts';

/**
 * The runbook end to end on the simulator's fresh (unconfigured) deployment: signed jobs → Redis →
 * the real agent runtime → the PowerShell stand-in, the CRM simulator and the Graph simulator →
 * signed reports. Plan → run → every step done; the plan's pending steps are the run's `changed`;
 * a second plan changes nothing; an injected fault halts with the right code and hint and the
 * next attempt completes without doing a change twice.
 */
let sim: CrmSimulator;
let h: Harness;
let run: SetupWorld['run'];
let plan: SetupWorld['plan'];
let world: SetupWorld;
const MAILBOXES = 24;

beforeAll(async () => {
  world = await startSetupWorld({ seed: 21, mailboxCount: MAILBOXES, testDelayMs: 50 });
  ({ sim, h, run, plan } = world);
}, 60_000);

afterAll(async () => {
  await world.close();
});

beforeEach(() => {
  sim.reset();
});

function failedEvent(reports: Report[]) {
  const failed = reports.find((r) => r.event.kind === 'failed');
  if (failed?.event.kind !== 'failed') throw new Error('no failed report');
  return failed.event;
}

describe('the runbook against the fresh simulated deployment', () => {
  it('preflight passes with a warning that the certificate is not on the servers yet', async () => {
    const out = await run<PreflightResult>({ type: 'preflight', ...jobCommon, runId: newRunId() });
    expect(out.result?.ok, JSON.stringify(out.result?.checks)).toBe(true);
    expect(out.result?.checks.map((c) => c.id)).toEqual(['crm-reachable', 'crm-admin-role', 'local-admin', 'graph-credentials', 'graph-permissions', 'ews-access', 'ews-mailboxes', 'certificate', 'certificate-servers', 'async-services']);
    expect(out.result?.checks.find((c) => c.id === 'certificate-servers')).toMatchObject({ status: 'warning' });
    // The fresh tenant never allowed EWS for CRM: since 1 October 2026 Exchange Online blocks it (run setup's ews-access step fixes it).
    expect(out.result?.checks.find((c) => c.id === 'ews-access')).toMatchObject({
      status: 'warning',
      detail: expect.stringMatching(/blocks EWS for CRM: the organization's EwsEnabled is False and CRM's app 00000007-0000-0000-c000-000000000000 is not in EwsAllowedAppIDs.*\d+ days? left/) as unknown,
      fix: expect.stringMatching(/`@setup ews allow`.*24 hours.*EWS usage report/) as unknown,
    });
    expect(out.result?.ews).toMatchObject({ verdict: 'blocked', organizationEnabled: false, appAllowed: false, mailboxesChecked: MAILBOXES, mailboxesDisabled: 0 });
  }, 60_000);

  it('preflight says what to do when the agent is no admin, lacks the CRM role and a Graph permission', async () => {
    sim.setKnobs({ localAdministrator: false, callerRoles: ['Salesperson'], graphPermissions: ['Organization.Read.All'] });
    const out = await run<PreflightResult>({ type: 'preflight', ...jobCommon, runId: newRunId() });
    expect(out.result?.ok).toBe(false);
    const byId = new Map(out.result?.checks.map((c) => [c.id, c]));
    expect(byId.get('local-admin')).toMatchObject({ status: 'failed', fix: expect.stringMatching(/local Administrators group/) as unknown });
    expect(byId.get('crm-admin-role')).toMatchObject({ status: 'failed', detail: expect.stringMatching(/Salesperson/) as unknown, fix: expect.stringMatching(/Manage Roles/) as unknown });
    expect(byId.get('graph-permissions')).toMatchObject({ status: 'failed', detail: expect.stringMatching(/Application\.ReadWrite\.All/) as unknown, fix: expect.stringMatching(/admin consent/) as unknown });
    const blocked = await plan();
    expect(blocked.blocked).toBe(true);
    expect(blocked.blockers.map((b) => b.message).join('\n')).toMatch(/local administrator/);
  }, 60_000);

  it('plan → run: every step done, the plan pending steps are what the run changed, the second plan changes nothing', async () => {
    const first = await plan();
    expect(first.blocked, JSON.stringify(first.blockers)).toBe(false);
    expect(first.tenantId).toBe(SIM_TENANT_ID);
    expect(first.mailboxes).toBe(MAILBOXES);
    expect(first.certThumbprint).toMatch(/^[0-9A-F]{40}$/);
    const pending = first.steps.filter((s) => s.state === 'pending').map((s) => s.id);
    expect(pending).toEqual(['import', 'grant-key-access', 'register-crm', 'entra-key-credential', 's2s-settings', 'tenant-id', 'ews-access', 'restart-services', 'email-profile', 'org-defaults', 'configure-mailboxes', 'approve-email', 'test-enable']);
    expect(first.ews).toMatchObject({ verdict: 'blocked' });
    expect(first.changes).toBe(pending.length);
    expect(first.steps.find((s) => s.id === 'adfs')).toMatchObject({ state: 'skipped' });

    const runId = newRunId();
    const out = await run<SetupRunResult>(runPayload(first, runId));
    expect(out.state, JSON.stringify(out.reports.at(-1))).toBe('completed');
    const result = out.result;
    expect(result?.steps.map((s) => s.state)).toEqual([...Array<string>(14).fill('done'), 'skipped']);
    expect(result?.changed).toEqual(pending);
    expect(result?.testReport).toMatchObject({ selected: MAILBOXES, succeeded: MAILBOXES, failed: 0, noResult: 0 });
    expect(s2sHealth(sim.s2s, Date.now())).toEqual({ ok: true });
    // Exchange Online now lets CRM use EWS: the pre-populated apps stay on the list.
    expect(sim.s2s.exchange.ewsEnabled).toBe(true);
    expect(sim.s2s.exchange.ewsAllowedAppIds).toEqual([...PREPOPULATED_APP_IDS, '00000007-0000-0000-c000-000000000000']);
    expect(result?.steps.find((s) => s.id === 'ews-access')?.detail).toMatch(/up to 24 hours/);

    const audit = await h.redis.xrange(auditKey(h.prefix, 'default'), '-', '+');
    const steps = audit.map(([, fields]) => JSON.parse(fields[1] ?? '{}') as { runId?: string; what: string }).filter((e) => e.runId === runId);
    expect(steps.map((e) => e.what)).toContain('step tenant-id');
    expect(steps).toHaveLength(15);

    const second = await plan();
    expect(second.changes, JSON.stringify(second.steps)).toBe(0);
    expect(second.ews).toMatchObject({ verdict: 'allowed', appAllowed: true });
    expect(second.blocked).toBe(false);
    const again = await run<SetupRunResult>(runPayload(second, newRunId()));
    expect(again.result?.changed).toEqual([]);
  }, 180_000);

  it('a fault in a step halts the run with the code, the step and the hint; attempt 2 completes without doing a change twice', async () => {
    const p = await plan();
    sim.configureS2S({ faults: [{ target: 'crm:POST emailserverprofiles', message: 'Crm.80048306 insufficient permissions: prvCreateEmailServerProfile', times: 1, status: 403, code: '0x80040220' }] });
    const runId = newRunId();
    const first = await run<SetupRunResult>(runPayload(p, runId, 1));
    expect(first.state).toBe('failed');
    const failed = failedEvent(first.reports);
    expect(failed.error.message).toMatch(/^Step 'Email server profile, Exchange Online \(Hybrid\)' failed/);
    expect(failed.error.hint).toMatch(/Mailbox privileges|privilege/);
    expect(failed.steps?.find((s) => s.id === 'email-profile')?.state).toBe('failed');
    expect(failed.steps?.find((s) => s.id === 'tenant-id')?.state).toBe('done');
    const changesAfterFirst = { ...sim.counters().changes };

    const second = await run<SetupRunResult>(runPayload(p, runId, 2), 2);
    expect(second.state, JSON.stringify(second.reports.at(-1))).toBe('completed');
    expect(second.result?.steps.find((s) => s.id === 'tenant-id')?.detail).toMatch(/earlier attempt/);
    // The certificate and tenant scripts did not change anything again.
    for (const script of ['Import-S2SCertificate', 'Register-S2SCertificate', 'Set-S2STenantId', 'Set-S2SServerSettings']) {
      expect(sim.counters().changes[script] ?? 0, script).toBe(changesAfterFirst[script] ?? 0);
    }
    expect(second.result?.changed).toContain('email-profile');
    expect(second.result?.changed).toContain('tenant-id');
  }, 180_000);

  it('refuses PLAN_CHANGED when the selection grew well beyond the plan', async () => {
    const p = await plan();
    const out = await run<SetupRunResult>({ ...runPayload(p, newRunId()), plannedMailboxes: 2 });
    expect(out.state).toBe('failed');
    expect(failedEvent(out.reports).error.code).toBe('PLAN_CHANGED');
  }, 60_000);
});
