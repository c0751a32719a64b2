import { describe, expect, it } from 'vitest';
import { approveMailboxes } from '../../../../agent/jobs/mailboxes/approve.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import { mailboxStatus } from '../../../../agent/jobs/mailboxes/status.ts';
import { planMailboxes } from '../../../../agent/jobs/mailboxes/plan.ts';
import { throttleProgress } from '../../../../agent/runtime/progress-throttle.ts';
import { testMailboxes } from '../../../../agent/jobs/mailboxes/test.ts';
import { approveResultSchema, planResultSchema, statusResultSchema, testResultSchema, type Progress } from '../../../../jobs/job-types.ts';
import { FakeCrm } from '../../support/fake-crm.ts';
import { testContext } from '../../support/job-context.ts';

const common = { runId: 'run0000001', deployment: 'default', requestedBy: 'aaaaaaaa-0000-0000-0000-000000000001' };
const approver = 'aaaaaaaa-0000-0000-0000-000000000002';
const idOf = (n: number) => `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`;

interface Box {
  mailboxid: string;
  emailaddress: string;
  emailrouteraccessapproval: number;
  incomingemailstatus: number;
  outgoingemailstatus: number;
  actstatus: number;
  testemailconfigurationscheduled: boolean;
  testmailboxaccesscompletedon: string | null;
}

function boxes(n: number, approval: (i: number) => number): Box[] {
  return Array.from({ length: n }, (_, i) => ({
    mailboxid: idOf(i + 1),
    emailaddress: `user${i + 1}@contoso.com`,
    emailrouteraccessapproval: approval(i),
    incomingemailstatus: 0,
    outgoingemailstatus: 0,
    actstatus: 0,
    testemailconfigurationscheduled: false,
    testmailboxaccesscompletedon: null,
  }));
}

const pages = <T>(rows: T[], size = 3): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out.length ? out : [[]];
};

const idFromPath = (path: string) => /\(([0-9a-f-]{36})\)/.exec(path)?.[1] ?? '';

describe('plan', () => {
  it('counts the selection, what approve would change, and samples at most 10 addresses', async () => {
    const store = boxes(14, (i) => (i < 2 ? 1 : 2));
    const crm = new FakeCrm({ get: () => pages(store) });
    const result = await planMailboxes({ type: 'plan', ...common, action: 'approve', filter: { kind: 'all' } }, testContext(crm));
    expect(planResultSchema.parse(result)).toEqual({
      type: 'plan',
      action: 'approve',
      matched: 14,
      toChange: 12,
      sample: store.slice(2, 12).map((b) => b.emailaddress),
    });
    expect(crm.queries[0]).toEqual({ set: 'mailboxes', select: ['mailboxid', 'emailaddress', 'emailrouteraccessapproval'], filter: 'statecode eq 0' });
    const test = await planMailboxes({ type: 'plan', ...common, action: 'test', filter: { kind: 'all' } }, testContext(crm));
    expect(test.toChange).toBe(14);
  });

  it('resolves a profile name with an escaped literal and filters on its id', async () => {
    const profileId = 'ABCDEF00-0000-0000-0000-000000000001';
    const crm = new FakeCrm({
      get: (set) => (set === 'emailserverprofiles' ? [[{ emailserverprofileid: profileId, name: "O'Brien EXO" }]] : [[]]),
    });
    await planMailboxes({ type: 'plan', ...common, action: 'test', filter: { kind: 'profile', name: "O'Brien EXO" } }, testContext(crm));
    expect(crm.queries[0]).toEqual({ set: 'emailserverprofiles', select: ['emailserverprofileid', 'name'], filter: "name eq 'O''Brien EXO'" });
    expect(crm.queries[1]?.filter).toBe(`statecode eq 0 and _emailserverprofile_value eq ${profileId.toLowerCase()}`);
  });

  it('fails with PROFILE_NOT_FOUND listing the profiles that exist', async () => {
    const crm = new FakeCrm({
      get: (_set, q) => (q.filter ? [[]] : [[{ name: 'Exchange Online' }, { name: 'Contoso EXO Hybrid' }]]),
    });
    const error = await planMailboxes({ type: 'plan', ...common, action: 'test', filter: { kind: 'profile', name: 'Nope' } }, testContext(crm)).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'PROFILE_NOT_FOUND', retryable: false });
    expect((error as Error).message).toContain('"Contoso EXO Hybrid", "Exchange Online"');
  });
});

describe('status', () => {
  it('counts approval states and test results over active mailboxes', async () => {
    const store = boxes(6, (i) => [0, 1, 1, 2, 3, 1][i] ?? 0);
    Object.assign(store[1] ?? {}, { incomingemailstatus: 1, outgoingemailstatus: 1 });
    Object.assign(store[2] ?? {}, { incomingemailstatus: 1, outgoingemailstatus: 2 });
    Object.assign(store[5] ?? {}, { incomingemailstatus: 1, outgoingemailstatus: 1, actstatus: 2 });
    const crm = new FakeCrm({ get: () => pages(store) });
    const result = await mailboxStatus({ type: 'status', ...common }, testContext(crm));
    expect(statusResultSchema.parse(result)).toEqual({
      type: 'status',
      total: 6,
      approval: { empty: 1, approved: 3, pending: 1, rejected: 1 },
      test: { success: 2, failure: 1, notRun: 3 },
      crmUser: '11111111-2222-3333-4444-555555555555',
    });
    expect(crm.queries[0]?.filter).toBe('statecode eq 0');
  });
});

describe('approve', () => {
  function approvingCrm(store: Box[], options: { denied?: Set<string>; truncateAtFailure?: boolean } = {}) {
    return new FakeCrm({
      get: () => pages(store),
      batchDelayMs: 5,
      batchPart: (req) => {
        const id = idFromPath(req.path);
        if (options.denied?.has(id)) {
          return { status: 403, headers: {}, body: { error: { code: '0x80040220', message: `Principal user is missing prvApproveRejectEmailAddress privilege (mailbox ${id})` } } };
        }
        const box = store.find((b) => b.mailboxid === id);
        if (box) box.emailrouteraccessapproval = (req.body as { emailrouteraccessapproval: number }).emailrouteraccessapproval;
        return { status: 204, headers: {}, body: undefined };
      },
      ...(options.truncateAtFailure ? { truncate: (r) => r.slice(0, r.findIndex((p) => p.status >= 400) + 1 || r.length) } : {}),
    });
  }

  it('approves the not-yet-approved in bounded batches, groups failures, and does nothing the second time', async () => {
    const store = boxes(25, (i) => (i % 5 === 0 ? 1 : 2));
    const denied = new Set([idOf(2), idOf(3)]);
    const crm = approvingCrm(store, { denied });
    const ctx = testContext(crm, { CRM_BATCH_SIZE: 4, CRM_CONCURRENCY: 2 });
    const payload = { type: 'approve' as const, ...common, filter: { kind: 'all' as const }, approvedBy: approver, plannedCount: 5000 };
    const result = approveResultSchema.parse(await approveMailboxes(payload, ctx));
    expect(result).toMatchObject({ matched: 25, alreadyApproved: 5, approved: 18, failed: 2 });
    expect(result.failures).toEqual([
      expect.objectContaining({ cause: 'insufficient-permissions', count: 2, sample: ['user2@contoso.com', 'user3@contoso.com'] }),
    ]);
    expect(result.failures[0]?.remediation).toMatch(/owner.*Mailbox privileges/);
    expect(crm.batches.every((b) => b.length <= 4)).toBe(true);
    expect(crm.batches.flat()).toHaveLength(20);
    expect(crm.batches.flat().every((r) => r.method === 'PATCH' && r.headers?.['If-Match'] === '*')).toBe(true);
    expect(crm.maxInFlight).toBeLessThanOrEqual(2);
    expect(crm.maxInFlight).toBe(2);
    expect(result.crmRequests).toBe(crm.requestCount);
    const last = ctx.progress.at(-1);
    expect(last).toMatchObject({ phase: 'approving', done: 20, total: 20, counts: { approved: 18, failed: 2, alreadyApproved: 5 } });

    const again = await approveMailboxes(payload, testContext(approvingCrm(store, { denied: new Set() })));
    expect(again).toMatchObject({ matched: 25, approved: 2, alreadyApproved: 23, failed: 0 });
    const third = approvingCrm(store);
    expect(await approveMailboxes(payload, testContext(third))).toMatchObject({ approved: 0, alreadyApproved: 25 });
    expect(third.batches).toHaveLength(0);
  });

  it('refuses with PLAN_CHANGED before any write when far more mailboxes need approving than the plan said', async () => {
    // 25 match, 5 already approved: 20 to change. The margin is max(5, 10%).
    const store = boxes(25, (i) => (i % 5 === 0 ? 1 : 2));
    const payload = (plannedCount: number) => ({ type: 'approve' as const, ...common, filter: { kind: 'all' as const }, approvedBy: approver, plannedCount });
    const refused = approvingCrm(store);
    const error = await approveMailboxes(payload(14), testContext(refused)).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'PLAN_CHANGED',
      retryable: false,
      message: 'The selection now matches 20 mailboxes; the approved plan said 14.',
      hint: 'Nothing was changed. Ask again for a fresh plan and approve that.',
    });
    expect(refused.batches).toHaveLength(0);
    expect(store.filter((b) => b.emailrouteraccessapproval === 1)).toHaveLength(5);

    // Already approved mailboxes do not count: 20 to change is within 15 + 5.
    const within = approvingCrm(store);
    expect(await approveMailboxes(payload(15), testContext(within))).toMatchObject({ matched: 25, approved: 20, alreadyApproved: 5 });
  });

  it('resends the parts a server did not answer after stopping at a failure', async () => {
    const store = boxes(6, () => 2);
    const crm = approvingCrm(store, { denied: new Set([idOf(2)]), truncateAtFailure: true });
    const result = await approveMailboxes({ type: 'approve', ...common, filter: { kind: 'pending' }, approvedBy: approver, plannedCount: 5000 }, testContext(crm, { CRM_BATCH_SIZE: 10 }));
    expect(result).toMatchObject({ approved: 5, failed: 1 });
    expect(crm.batches.map((b) => b.length)).toEqual([6, 4]);
    expect(store.filter((b) => b.emailrouteraccessapproval === 1)).toHaveLength(5);
  });
});

describe('test (Test & Enable)', () => {
  const crmDate = new Date('2025-07-01T09:59:30Z');

  /** Results arrive in CRM over the polls: `finishOnPoll[i]` = poll after which mailbox i has its result (undefined: never). */
  function testingCrm(
    store: Box[],
    finishOnPoll: (number | undefined)[],
    outcome: (i: number) => [number, number],
    traces: { id: string; text: string }[],
    failPoll: (poll: number) => Error | undefined = () => undefined,
  ) {
    let polls = 0;
    const crm = new FakeCrm({
      date: () => crmDate,
      batchPart: (req) => {
        const box = store.find((b) => b.mailboxid === idFromPath(req.path));
        if (box) box.testemailconfigurationscheduled = true;
        return { status: 204, headers: {}, body: undefined };
      },
      get: (set, q) => {
        if (set === 'tracelogs') {
          return [traces.map((t, i) => ({ tracelogid: idOf(900 + i), text: t.text, _regardingobjectid_value: t.id, createdon: '2025-06-01T08:00:00Z', modifiedon: '2025-07-01T10:00:20Z' }))];
        }
        if (q.select.includes('testemailconfigurationscheduled')) {
          polls += 1;
          const failure = failPoll(polls);
          if (failure) throw failure;
          store.forEach((b, i) => {
            if (finishOnPoll[i] !== undefined && polls >= (finishOnPoll[i] ?? 0) && b.testemailconfigurationscheduled) {
              const [inc, out] = outcome(i);
              Object.assign(b, { testemailconfigurationscheduled: false, incomingemailstatus: inc, outgoingemailstatus: out, testmailboxaccesscompletedon: '2025-07-01T10:00:10Z' });
            }
          });
          // Plus an unrelated mailbox outside the selection that someone else tested.
          return pages([...store, { ...boxes(1, () => 1)[0], mailboxid: idOf(999), testmailboxaccesscompletedon: '2025-07-01T10:00:10Z' }]);
        }
        return pages(store);
      },
    });
    return { crm, polls: () => polls };
  }

  it('schedules, polls with one query per interval from T0 (CRM clock before scheduling - 2 s), and groups failures by trace', async () => {
    const store = boxes(5, () => 1);
    const { crm, polls } = testingCrm(
      store,
      [1, 1, 2, 3, 3],
      (i) => (i === 2 ? [2, 1] : i === 4 ? [1, 2] : [1, 1]),
      [
        { id: idOf(3), text: 'The remote server returned an error: (401) Unauthorized.' },
        { id: idOf(5), text: 'Unheard-of problem X' },
        { id: idOf(1), text: 'info about a succeeded mailbox' },
      ],
    );
    const ctx = testContext(crm, { TEST_POLL_INTERVAL_MS: 10_000 });
    const result = testResultSchema.parse(await testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 5000 }, ctx));
    expect(result).toMatchObject({ selected: 5, succeeded: 3, failed: 2, noResult: 0 });
    expect(polls()).toBe(3);
    expect(ctx.sleeps).toEqual([10_000, 10_000, 10_000]);
    const poll = crm.queries.find((q) => q.select.includes('testmailboxaccesscompletedon'));
    expect(poll?.filter).toBe('testemailconfigurationscheduled eq true or testmailboxaccesscompletedon ge 2025-07-01T09:59:28Z');
    expect(poll?.select).toEqual([
      'mailboxid',
      'emailaddress',
      'testemailconfigurationscheduled',
      'incomingemailstatus',
      'outgoingemailstatus',
      'actstatus',
      'testmailboxaccesscompletedon',
    ]);
    const traceQuery = crm.queries.find((q) => q.set === 'tracelogs');
    // Alerts created or updated since T0: CRM updates a mailbox's alert in place when the failure recurs.
    expect(traceQuery).toEqual({ set: 'tracelogs', select: ['tracelogid', 'text', '_regardingobjectid_value', 'modifiedon'], filter: 'modifiedon ge 2025-07-01T09:59:28Z' });
    expect(result.failures).toHaveLength(2);
    expect(result.failures).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ cause: 'exchange-unauthorized', count: 1, sample: ['user3@contoso.com'] }),
        expect.objectContaining({ cause: 'unknown', count: 1, sample: ['user5@contoso.com'], example: 'Unheard-of problem X' }),
      ]),
    );
    expect(crm.batches.flat().every((r) => JSON.stringify(r.body) === '{"testemailconfigurationscheduled":true}')).toBe(true);
    expect(ctx.progress.some((p) => p.phase === 'waiting')).toBe(true);
  });

  it("takes T0 from CRM's clock before the first PATCH, so a mailbox that completes while its batch is answered counts", async () => {
    // CRM's clock: each PATCH takes 2 s to process; the first mailbox's test completes as soon as it
    // is scheduled, long before the batch of 5 is answered (10 s later).
    let crmClock = Date.parse('2025-07-01T10:00:00Z');
    const store = boxes(5, () => 1);
    const completeNow = (b: Box) =>
      Object.assign(b, { testemailconfigurationscheduled: false, incomingemailstatus: 1, outgoingemailstatus: 1, testmailboxaccesscompletedon: new Date(crmClock).toISOString() });
    const crm = new FakeCrm({
      date: () => new Date(crmClock),
      batchPart: (req) => {
        crmClock += 2_000;
        const box = store.find((b) => b.mailboxid === idFromPath(req.path));
        if (box && box === store[0]) completeNow(box);
        else if (box) box.testemailconfigurationscheduled = true;
        return { status: 204, headers: {}, body: undefined };
      },
      get: (_set, q) => {
        if (q.select.includes('testemailconfigurationscheduled')) {
          crmClock += 10_000;
          store.filter((b) => b.testemailconfigurationscheduled).forEach(completeNow);
        }
        return pages(store);
      },
    });
    const ctx = testContext(crm, { TEST_POLL_INTERVAL_MS: 10_000, TEST_TIMEOUT_MS: 60_000 });
    const result = await testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 5 }, ctx);
    expect(result).toMatchObject({ selected: 5, succeeded: 5, noResult: 0 });
    expect(ctx.sleeps).toEqual([10_000]);
    expect(crm.log.slice(0, 4)).toEqual(['get mailboxes', 'get mailboxes', 'date', 'batch']);
    expect(crm.queries.find((q) => q.select.includes('testmailboxaccesscompletedon'))?.filter).toBe(
      'testemailconfigurationscheduled eq true or testmailboxaccesscompletedon ge 2025-07-01T09:59:58Z',
    );
  });

  it('falls back to the agent clock (minus the margin) when CRM sends no Date header', async () => {
    const store = boxes(2, () => 1);
    const { crm } = testingCrm(store, [1, 1], () => [1, 1], []);
    const noDate = Object.assign(Object.create(crm) as FakeCrm, { serverDate: () => Promise.resolve(undefined) });
    const ctx = testContext(noDate);
    const result = await testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 2 }, ctx);
    expect(result).toMatchObject({ succeeded: 2, noResult: 0 });
    // The fake agent clock starts at 10:00:00 (CRM's batch answers say 09:59:30, and are not used).
    expect(crm.queries.find((q) => q.select.includes('testmailboxaccesscompletedon'))?.filter).toMatch(/ge 2025-07-01T09:59:58Z$/);
  });

  it('refuses with PLAN_CHANGED before scheduling anything when the selection outgrew the plan', async () => {
    const store = boxes(8, () => 1);
    const { crm } = testingCrm(store, [1, 1, 1, 1, 1, 1, 1, 1], () => [1, 1], []);
    const payload = (plannedCount: number) => ({ type: 'test' as const, ...common, filter: { kind: 'all' as const }, approvedBy: approver, plannedCount });
    const error = await testMailboxes(payload(2), testContext(crm)).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'PLAN_CHANGED',
      retryable: false,
      message: 'The selection now matches 8 mailboxes; the approved plan said 2.',
      hint: 'Nothing was changed. Ask again for a fresh plan and approve that.',
    });
    expect(crm.batches).toHaveLength(0);
    expect(crm.log).toEqual(['get mailboxes', 'get mailboxes', 'get mailboxes']);
    expect(await testMailboxes(payload(3), testContext(crm))).toMatchObject({ selected: 8, succeeded: 8 });
  });

  it('carries on at the next interval when a poll fails with a retryable CRM error, and fails on a permanent one', async () => {
    const store = boxes(3, () => 1);
    // Polls 2 and 3 fail (CRM busy, then unreachable after the client's own retries).
    const transient = new Map<number, Error>([
      [2, new SetupError('CRM_REQUEST_FAILED', 'CRM answered 503 to GET mailboxes', { retryable: true })],
      [3, new SetupError('CRM_UNREACHABLE', 'Cannot reach CRM', { retryable: true })],
    ]);
    const { crm, polls } = testingCrm(store, [1, 4, 4], () => [1, 1], [], (poll) => transient.get(poll));
    const ctx = testContext(crm, { TEST_POLL_INTERVAL_MS: 10_000, TEST_TIMEOUT_MS: 60_000 });
    const result = await testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 3 }, ctx);
    expect(result).toMatchObject({ selected: 3, succeeded: 3, noResult: 0 });
    expect(polls()).toBe(4);
    expect(ctx.sleeps).toEqual([10_000, 10_000, 10_000, 10_000]);

    // Still bounded by the overall time-out when CRM stays down.
    const down = testingCrm(boxes(2, () => 1), [1, 1], () => [1, 1], [], () => new SetupError('CRM_UNREACHABLE', 'Cannot reach CRM', { retryable: true }));
    const downCtx = testContext(down.crm, { TEST_POLL_INTERVAL_MS: 10_000, TEST_TIMEOUT_MS: 30_000 });
    expect(await testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 2 }, downCtx)).toMatchObject({ noResult: 2 });
    expect(downCtx.sleeps).toEqual([10_000, 10_000, 10_000]);

    const permanent = testingCrm(boxes(2, () => 1), [1, 1], () => [1, 1], [], () => new SetupError('CRM_REQUEST_FAILED', 'CRM answered 403', { retryable: false }));
    await expect(
      testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 2 }, testContext(permanent.crm)),
    ).rejects.toMatchObject({ code: 'CRM_REQUEST_FAILED', retryable: false });
  });

  it('stops at TEST_TIMEOUT_MS and counts the rest as noResult', async () => {
    const store = boxes(3, () => 1);
    const { crm } = testingCrm(store, [1, undefined, undefined], () => [1, 1], []);
    const ctx = testContext(crm, { TEST_POLL_INTERVAL_MS: 10_000, TEST_TIMEOUT_MS: 25_000 });
    const result = await testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 5000 }, ctx);
    expect(result).toMatchObject({ selected: 3, succeeded: 1, failed: 0, noResult: 2, failures: [] });
    expect(ctx.sleeps).toEqual([10_000, 10_000, 5_000]);
  });

  it('ignores results older than T0 (a mailbox tested before this run)', async () => {
    const store = boxes(1, () => 1);
    let polls = 0;
    const crm = new FakeCrm({
      date: () => crmDate,
      get: (_set, q) => {
        if (!q.select.includes('testemailconfigurationscheduled')) return [store];
        polls += 1;
        return [[{ ...store[0], testemailconfigurationscheduled: false, incomingemailstatus: 1, outgoingemailstatus: 1, testmailboxaccesscompletedon: '2025-07-01T09:00:00Z' }]];
      },
    });
    const result = await testMailboxes({ type: 'test', ...common, filter: { kind: 'all' }, approvedBy: approver, plannedCount: 5000 }, testContext(crm, { TEST_TIMEOUT_MS: 30_000 }));
    expect(result).toMatchObject({ succeeded: 0, noResult: 1 });
    expect(polls).toBe(3);
  });
});

describe('throttleProgress', () => {
  it('passes the first update at once and then at most one per interval', () => {
    let now = 0;
    const seen: Progress[] = [];
    const report = throttleProgress((p) => seen.push(p), 2_000, () => now);
    for (let t = 0; t <= 5_000; t += 500) {
      now = t;
      report({ phase: 'approving', done: t, total: 5_000 });
    }
    expect(seen.map((p) => p.done)).toEqual([0, 2_000, 4_000]);
  });
});
