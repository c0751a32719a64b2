import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmailRouterAccessApproval as A, MailboxTestStatus as T, StateCode } from '../../jobs/crm-values.ts';
import { jobAddOptions, newRunId, signJob } from '../../jobs/job-options.ts';
import type { ApproveResult, JobPayload, JobResult, Report, SetupPlanResult, SetupRunResult, StatusResult, TestResult } from '../../jobs/job-types.ts';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { createHarness, settled, waitFor, type Harness } from './support/redis-harness.ts';

/** End to end: signed job → Redis → agent → CRM simulator over HTTP → signed reports. */
let sim: CrmSimulator;
let h: Harness;

beforeEach(async () => {
  sim = await startCrmSimulator({ port: 0, seed: 7, mailboxCount: 200, testDelayMs: 150 });
  h = await createHarness();
  await h.start({
    CRM_URL: sim.orgUrl,
    CRM_BATCH_SIZE: '25',
    CRM_CONCURRENCY: '3',
    CRM_PAGE_SIZE: '50',
    TEST_POLL_INTERVAL_MS: '100',
    TEST_TIMEOUT_MS: '15000',
  });
});

afterEach(async () => {
  await h.close();
  await sim.close();
});

const requestedBy = 'aaaaaaaa-0000-0000-0000-000000000001';
const approvedBy = 'aaaaaaaa-0000-0000-0000-000000000002';

async function run<R extends JobResult>(payload: JobPayload): Promise<{ result: R; reports: Report[] }> {
  await h.jobs.add(payload.type, signJob(h.signer, payload), jobAddOptions(payload.runId, payload.type));
  const { state, job } = await settled(h.jobs, `${payload.runId}-${payload.type}`, 25_000);
  expect(state, job.failedReason).toBe('completed');
  await waitFor('result report', () => h.reports.find((r) => r.runId === payload.runId && r.event.kind === 'result'));
  return { result: job.returnvalue as R, reports: h.reports.filter((r) => r.runId === payload.runId) };
}

const active = () => [...sim.state.mailboxes.values()].filter((m) => m.statecode === StateCode.Active);
const approvals = () => new Map([...sim.state.mailboxes.values()].map((m) => [m.mailboxid, m.emailrouteraccessapproval]));

describe('agent against the CRM simulator', () => {
  it('approves pending mailboxes; the count matches the simulator and a second run changes nothing', async () => {
    const pending = active().filter((m) => m.emailrouteraccessapproval === A.Empty || m.emailrouteraccessapproval === A.PendingApproval);
    const noPrivilege = pending.filter((m) => sim.state.principals.get(m._ownerid_value)?.hasApprovePrivilege === false);
    const approvedBefore = active().filter((m) => m.emailrouteraccessapproval === A.Approved).length;
    expect(pending.length).toBeGreaterThan(50);
    expect(noPrivilege.length).toBeGreaterThan(0); // the seed has owners without prvApproveRejectEmailAddress

    const payload = { type: 'approve' as const, runId: newRunId(), deployment: 'default', requestedBy, approvedBy, plannedCount: 5000, filter: { kind: 'pending' as const } };
    const { result, reports } = await run<ApproveResult>(payload);
    expect(result).toMatchObject({ matched: pending.length, approved: pending.length - noPrivilege.length, alreadyApproved: 0, failed: noPrivilege.length });
    expect(active().filter((m) => m.emailrouteraccessapproval === A.Approved).length).toBe(approvedBefore + result.approved);
    expect(result.failures).toEqual([expect.objectContaining({ cause: 'insufficient-permissions', count: noPrivilege.length })]);
    expect(result.failures[0]?.sample.sort()).toEqual(noPrivilege.map((m) => m.emailaddress).sort());
    expect(result.crmRequests).toBeGreaterThanOrEqual(1 + Math.ceil(pending.length / 25));
    expect(reports.map((r) => r.event.kind)).toContain('progress');

    const before = approvals();
    const again = await run<ApproveResult>({ ...payload, runId: newRunId() });
    expect(again).toMatchObject({ result: { matched: noPrivilege.length, approved: 0, failed: noPrivilege.length } });
    expect(approvals()).toEqual(before);
  });

  it('tests mailboxes: waits for the asynchronous results and groups failures by cause', async () => {
    const selected = active();
    const payload = { type: 'test' as const, runId: newRunId(), deployment: 'default', requestedBy, approvedBy, plannedCount: 5000, filter: { kind: 'all' as const } };
    const { result } = await run<TestResult>(payload);
    expect(result.selected).toBe(selected.length);
    expect(result.noResult).toBe(0);
    expect(result.succeeded + result.failed).toBe(selected.length);
    const succeededInSim = active().filter((m) => m.incomingemailstatus === T.Success && m.outgoingemailstatus === T.Success).length;
    expect(result.succeeded).toBe(succeededInSim);
    expect(active().every((m) => !m.testemailconfigurationscheduled)).toBe(true);
    const causes = new Map(result.failures.map((g) => [g.cause, g]));
    // Pending mailboxes fail for want of approval; seeded bad addresses and wrong profiles give 401s.
    expect(causes.get('approval-required')?.count).toBe(
      selected.filter((m) => m.emailrouteraccessapproval !== A.Approved && m.incomingemaildeliverymethod === 2).length,
    );
    expect(causes.get('exchange-unauthorized')?.count ?? 0).toBeGreaterThan(0);
    for (const address of causes.get('approval-required')?.sample ?? []) {
      const box = selected.find((m) => m.emailaddress === address);
      expect(box?.emailrouteraccessapproval).not.toBe(A.Approved);
    }
    expect(result.failures.reduce((n, g) => n + g.count, 0)).toBe(result.failed);
  });

  it('explains a failure from the alert CRM updated in place (modifiedon moves, createdon stays), with its new cause', async () => {
    // Seeded mailboxes that failed before with a 401: each already has its alert from an earlier test.
    const alertsOf = (id: string) => [...sim.state.tracelogs.values()].filter((t) => t._regardingobjectid_value === id);
    const failedBefore = active().filter(
      (m) => m.emailrouteraccessapproval === A.Approved && m.incomingemailstatus === T.Failure && sim.state.badAddresses.get((m.emailaddress ?? '').toLowerCase()) === 'unauthorized' && alertsOf(m.mailboxid).length === 1,
    );
    expect(failedBefore.length).toBeGreaterThan(2);
    const box = failedBefore[0];
    if (!box?.emailaddress) throw new Error('no seeded failed mailbox with an address');
    const [alert] = alertsOf(box.mailboxid);
    const firstSeen = alert?.createdon;
    expect(alert?.text).toMatch(/\(401\) Unauthorized/);
    const t0 = Date.now();
    const test = async () => {
      const payload = { type: 'test' as const, runId: newRunId(), deployment: 'default', requestedBy, approvedBy, plannedCount: 1, filter: { kind: 'addresses' as const, addresses: [box.emailaddress ?? ''] } };
      return (await run<TestResult>(payload)).result;
    };

    // The same failure again: the alert is updated, not a new one, and still explains the failure.
    const again = await test();
    expect(alertsOf(box.mailboxid)).toHaveLength(1);
    expect(again.failures).toEqual([expect.objectContaining({ cause: 'exchange-unauthorized', count: 1, sample: [box.emailaddress] })]);

    // Now Exchange Online blocks EWS for this mailbox: CRM updates the same alert with the 403.
    sim.s2s.exchange.mailboxEwsDisabled.add(box.emailaddress.toLowerCase());
    const result = await test();
    const after = alertsOf(box.mailboxid);
    expect(after).toHaveLength(1);
    expect(after[0]?.tracelogid).toBe(alert?.tracelogid);
    expect(after[0]?.createdon).toBe(firstSeen);
    expect(Date.parse(firstSeen ?? '')).toBeLessThan(t0 - 60_000);
    expect(Date.parse(after[0]?.modifiedon ?? '')).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000 - 2000);
    expect(after[0]?.text).toMatch(/403: Forbidden\. X-EWS-Policy-Reason: EWS is disabled for this user or tenant/);
    expect(result).toMatchObject({ selected: 1, failed: 1 });
    expect(result.failures).toEqual([expect.objectContaining({ cause: 'ews-blocked', count: 1, sample: [box.emailaddress] })]);
  });

  it('groups Test & Enable failures that Exchange Online refuses over EWS under the EWS cause, with the fix', async () => {
    // The tenant never put CRM on its EWS allow-list (the state since 1 October 2026 for a tenant that did not act).
    sim.s2s.exchange.ewsAllowedAppIds = ['d3590ed6-52b3-4102-aeff-aad2292ab01c'];
    const goodBefore = active().filter((m) => m.emailrouteraccessapproval === A.Approved && m.incomingemailstatus === T.Success && m.outgoingemailstatus === T.Success);
    expect(goodBefore.length).toBeGreaterThan(5);
    const addresses = goodBefore.slice(0, 6).map((m) => m.emailaddress ?? '');
    const payload = { type: 'test' as const, runId: newRunId(), deployment: 'default', requestedBy, approvedBy, plannedCount: 6, filter: { kind: 'addresses' as const, addresses } };
    const { result } = await run<TestResult>(payload);
    expect(result).toMatchObject({ selected: 6, succeeded: 0, failed: 6 });
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0]).toMatchObject({ cause: 'ews-blocked', count: 6, title: expect.stringMatching(/EWS is blocked for CRM in Exchange Online/) as unknown });
    expect(result.failures[0]?.remediation).toMatch(/@setup ews allow.*24 hours/);
  });

  it('ACT tied to another organization: Test & Enable groups it; sync this org only marks exactly those mailboxes and they pass', async () => {
    const healthy = active().filter((m) => m.emailrouteraccessapproval === A.Approved && m.incomingemailstatus === T.Success && m.actdeliverymethod === 1 && m.emailaddress);
    const tied = healthy.slice(0, 3).map((m) => m.emailaddress ?? '');
    const bystander = healthy[3];
    // A mailbox whose ACT fails for another reason (its owner lacks the privileges): never taken from another organization.
    const otherFailure = healthy[4];
    if (otherFailure) otherFailure.orgmarkedasprimaryforexchangesync = false;
    expect(tied).toHaveLength(3);
    // Their items are tied to another CRM organization, and this one is not marked as the primary one (the seed marks working mailboxes).
    for (const m of healthy.slice(0, 3)) m.orgmarkedasprimaryforexchangesync = false;
    sim.setKnobs({ actInAnotherOrganization: tied, ownersWithoutPrivileges: [otherFailure?.emailaddress ?? ''] });
    const addresses = [...tied, bystander?.emailaddress ?? '', otherFailure?.emailaddress ?? ''];
    const tested = await run<TestResult>({ type: 'test', runId: newRunId(), deployment: 'default', requestedBy, approvedBy, plannedCount: 5, filter: { kind: 'addresses', addresses } });
    expect(tested.result).toMatchObject({ selected: 5, succeeded: 1, failed: 4 });
    expect(tested.result.failures).toEqual(expect.arrayContaining([expect.objectContaining({ cause: 'another-organization', count: 3 }), expect.objectContaining({ cause: 'insufficient-permissions', count: 1 })]));
    expect(tested.result.failures[0]?.remediation).toMatch(/sync this org only/);
    // Email itself works: only ACT failed.
    for (const a of tied) expect(active().find((m) => m.emailaddress === a)).toMatchObject({ incomingemailstatus: T.Success, outgoingemailstatus: T.Success, actstatus: T.Failure });

    const filter = { kind: 'addresses' as const, addresses };
    const plan = (await run<SetupPlanResult>({ type: 'setup-plan', runId: newRunId(), deployment: 'default', requestedBy, scope: 'primary-org', filter })).result;
    expect(plan.steps.map((p) => [p.id, p.state])).toEqual([['mark-primary-org', 'pending'], ['test-enable', 'pending']]);
    expect(plan.steps[0]?.detail).toBe('would mark 3 of 5 mailboxes to sync items with Exchange from this organization only');
    // The run (on the tied mailboxes and the working one) marks and tests exactly the tied ones.
    const runFilter = { kind: 'addresses' as const, addresses: [...tied, bystander?.emailaddress ?? ''] };
    const payload = { type: 'setup-run' as const, runId: newRunId(), deployment: 'default', requestedBy, scope: 'primary-org' as const, filter: runFilter, plannedMailboxes: 4, tenantId: null, certThumbprint: null, approvedBy, attempt: 1 };
    const out = await run<SetupRunResult>(payload);
    expect(out.result.changed).toEqual(['mark-primary-org', 'test-enable']);
    expect(out.result.testReport).toMatchObject({ selected: 3, succeeded: 3, failed: 0 });
    for (const a of tied) expect(active().find((m) => m.emailaddress === a)).toMatchObject({ orgmarkedasprimaryforexchangesync: true, actstatus: T.Success });
    expect(active().find((m) => m.mailboxid === bystander?.mailboxid)?.orgmarkedasprimaryforexchangesync).toBe(bystander?.orgmarkedasprimaryforexchangesync);
    expect(active().find((m) => m.mailboxid === otherFailure?.mailboxid)?.orgmarkedasprimaryforexchangesync).toBe(false);
  });

  it('refuses approve and test runs whose selection outgrew the approved plan, changing nothing in CRM', async () => {
    const pending = active().filter((m) => m.emailrouteraccessapproval === A.Empty || m.emailrouteraccessapproval === A.PendingApproval);
    const before = approvals();
    const scheduledBefore = active().filter((m) => m.testemailconfigurationscheduled).length;
    const common = { deployment: 'default', requestedBy, approvedBy, plannedCount: 3 };
    for (const payload of [
      { type: 'approve' as const, runId: newRunId(), ...common, filter: { kind: 'pending' as const } },
      { type: 'test' as const, runId: newRunId(), ...common, filter: { kind: 'all' as const } },
    ]) {
      await h.jobs.add(payload.type, signJob(h.signer, payload), jobAddOptions(payload.runId, payload.type));
      const { state, job } = await settled(h.jobs, `${payload.runId}-${payload.type}`);
      expect(state).toBe('failed');
      expect(job.attemptsMade).toBe(1);
      expect(job.failedReason).toMatch(/^PLAN_CHANGED: The selection now matches \d+ mailboxes; the approved plan said 3\.$/);
      const failed = await waitFor('failed report', () => h.reports.find((r) => r.runId === payload.runId && r.event.kind === 'failed'));
      const count = payload.type === 'approve' ? pending.length : active().length;
      expect(failed.event).toEqual({
        kind: 'failed',
        error: {
          code: 'PLAN_CHANGED',
          message: `The selection now matches ${count} mailboxes; the approved plan said 3.`,
          hint: 'Nothing was changed. Ask again for a fresh plan and approve that.',
        },
      });
    }
    expect(approvals()).toEqual(before);
    expect(active().filter((m) => m.testemailconfigurationscheduled).length).toBe(scheduledBefore);
  });

  it('retries a 503 from CRM and still completes', async () => {
    sim.configure({ failNext: 2 });
    sim.resetStats();
    const { result } = await run<StatusResult>({ type: 'status', runId: newRunId(), deployment: 'default', requestedBy });
    expect(result.total).toBe(active().length);
    expect(result.crmUser).toBe(sim.state.callerUserId);
    // 2 refused + WhoAmI + the mailbox pages (page size 50).
    expect(sim.stats.requests).toBe(2 + 1 + Math.ceil(active().length / 50));
  });

  it('on close, stops waiting for Test & Enable results and leaves the job to be retried', async () => {
    sim.configure({ testDelayMs: 600_000 });
    const payload = { type: 'test' as const, runId: newRunId(), deployment: 'default', requestedBy, approvedBy, plannedCount: 5000, filter: { kind: 'all' as const } };
    await h.jobs.add('test', signJob(h.signer, payload), jobAddOptions(payload.runId, 'test'));
    await waitFor('waiting progress', () => h.reports.find((r) => r.runId === payload.runId && r.event.kind === 'progress' && r.event.progress.phase === 'waiting'));
    const started = Date.now();
    await h.agent?.close();
    expect(Date.now() - started).toBeLessThan(1_500);
    const job = await h.jobs.getJob(`${payload.runId}-test`);
    expect(await job?.getState()).toBe('delayed');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toMatch(/shutting down/);
    expect(h.reports.some((r) => r.runId === payload.runId && (r.event.kind === 'failed' || r.event.kind === 'result'))).toBe(false);
  });
});
