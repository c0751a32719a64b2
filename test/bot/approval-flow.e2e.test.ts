import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { jobQueueName } from '../../jobs/deployment.ts';
import { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { reportAddOptions, signReport } from '../../jobs/job-options.ts';
import { reportQueueName } from '../../jobs/deployment.ts';
import type { RunStore } from '../../bot/runs/run-store.ts';
import { APPROVER, OPERATOR, OTHER_OPERATOR, STRANGER, clickCard, runStoreOf, sendMessage, startHarness, waitForJobState, type Harness, type User } from '../support/bot-harness.ts';
import { cardOf, cardText, type CapturedCall } from '../support/fake-connector.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function harness(): Harness {
  if (!h) throw new Error('no harness');
  return h;
}

const say = (from: User, text: string): Promise<CapturedCall> => sendMessage(harness(), from, text);

const click = (from: User, verb: string, runId: string, cardId: string, activity?: Record<string, unknown>) =>
  clickCard(harness(), from, verb, runId, cardId, activity);

/** Sends the command, answers the plan job and waits until the card shows the plan. */
async function planned(command: string, from: User, plan: { matched: number; toChange: number; sample: string[] }, action: 'approve' | 'test' = 'approve') {
  const t = harness();
  const planning = await say(from, command);
  expect(cardText(cardOf(planning))).toContain('Planning');
  const job = await t.agent.waitForJob('plan');
  expect(job.action).toBe(action);
  await t.agent.report(job.runId, 'plan', { kind: 'result', result: { type: 'plan', action, ...plan } });
  await t.connector.waitFor(() => t.connector.updates(planning.activityId).length >= 1, 'the plan card');
  const card = cardOf(t.connector.updates(planning.activityId)[0]);
  return { runId: job.runId, cardId: planning.activityId, card, job };
}

const runStore = (): RunStore => runStoreOf(harness());

async function jobCounts(): Promise<number> {
  const t = harness();
  const q = new Queue(jobQueueName(t.config.deployment), { connection: t.redis, prefix: t.prefix });
  const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'paused', 'prioritized');
  await q.close();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

describe('messages', () => {
  it('answers help to anyone, and unknown commands with help', async () => {
    h = await startHarness();
    const help = await say(STRANGER, 'help');
    expect(cardText(cardOf(help))).toContain('approve mailboxes [filter]');
    expect(help.body.text).toBeUndefined();
    const unknown = await say(OPERATOR, 'frobnicate the mailboxes');
    expect(cardText(cardOf(unknown))).toContain("I don't know the command");
    expect(cardText(cardOf(unknown))).toContain('approve mailboxes [filter]');
    expect(await jobCounts()).toBe(0);
  });

  it('rejects an invalid filter with the valid forms and enqueues nothing', async () => {
    h = await startHarness();
    const reply = await say(OPERATOR, "approve mailboxes ' or 1 eq 1");
    const text = cardText(cardOf(reply));
    expect(text).toContain('email ends with @contoso.com');
    expect(text).toContain('profile "Exchange Online"');
    expect(await jobCounts()).toBe(0);
  });

  it('refuses a command from someone not in SETUP_OPERATORS: no run, no job', async () => {
    h = await startHarness();
    const reply = await say(STRANGER, 'approve mailboxes pending');
    const text = cardText(cardOf(reply));
    expect(text).toContain('SETUP_OPERATORS');
    expect(text).toContain(STRANGER.aadObjectId);
    expect(await jobCounts()).toBe(0);
    expect(await harness().redis.keys(`${harness().prefix}:run:*`)).toEqual([]);
  });

  it('reports status: agent heartbeat and the counts from the status job', async () => {
    h = await startHarness();
    const t = harness();
    const checking = await say(OPERATOR, 'status');
    expect(cardText(cardOf(checking))).toContain('no agent has reported');
    await t.redis.set(`${t.prefix}:agent-heartbeat:contoso`, String(t.clock.now() - 5_000));
    const job = await t.agent.waitForJob('status');
    await t.agent.report(job.runId, 'status', {
      kind: 'result',
      result: { type: 'status', total: 10, approval: { empty: 1, approved: 6, pending: 2, rejected: 1 }, test: { success: 4, failure: 2, notRun: 4 }, crmUser: 'CONTOSO\\crmadmin' },
    });
    await t.connector.waitFor(() => t.connector.updates(checking.activityId).length === 1, 'the status card');
    const text = cardText(cardOf(t.connector.updates(checking.activityId)[0]));
    expect(text).toContain('last seen 5 s ago');
    expect(text).toContain('Pending Approval');
    expect(text).toContain('Mailboxes: 10');
  });
});

describe('approve mailboxes', () => {
  it('plans, refuses a non-approver, starts exactly one job on approval, relays progress at most every interval, and posts results', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId, card, job } = await planned('approve mailboxes email ends with @contoso.com', OPERATOR, {
      matched: 3,
      toChange: 2,
      sample: ['alice@contoso.com', 'bob@contoso.com'],
    });
    expect(job.filter).toEqual({ kind: 'domain', domain: 'contoso.com' });
    expect(job.requestedBy).toBe(OPERATOR.aadObjectId);
    const text = cardText(card);
    expect(text).toContain('Approve Email: emailrouteraccessapproval → Approved');
    expect(text).toContain('alice@contoso.com');
    expect(card.actions?.map((a) => [a.title, a.verb, a.data])).toEqual([
      ['Approve', 'run.approve', { runId }],
      ['Reject', 'run.reject', { runId }],
    ]);
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');

    // An operator who is not an approver: refused, nothing changes.
    const refused = await click(OPERATOR, 'run.approve', runId, cardId);
    expect(refused.body.value).toContain('SETUP_APPROVERS');
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');

    // Forged card data is ignored: a different run id that does not exist.
    const forged = await click(APPROVER, 'run.approve', 'zzzzzzzzzz', cardId);
    expect(forged.body.value).toContain('unknown');

    // The approver: the card is replaced for everyone, one approve job.
    const updatesBefore = t.connector.updates(cardId).length;
    const approved = await click(APPROVER, 'run.approve', runId, cardId);
    expect(cardText(approved.body.value)).toContain(`Approved by ${APPROVER.name}`);
    expect(t.connector.updates(cardId).length).toBe(updatesBefore + 1);
    expect(cardText(cardOf(t.connector.updates(cardId).at(-1)))).toContain(`Approved by ${APPROVER.name}`);
    const work = await t.agent.waitForJob('approve', runId);
    expect(work).toMatchObject({ type: 'approve', runId, approvedBy: APPROVER.aadObjectId, requestedBy: OPERATOR.aadObjectId, filter: { kind: 'domain', domain: 'contoso.com' } });

    // Double click and a replayed invoke: no second job, no state change.
    await click(APPROVER, 'run.approve', runId, cardId);
    await click(APPROVER, 'run.approve', runId, cardId, approved.activity);
    const rejectAfter = await click(APPROVER, 'run.reject', runId, cardId);
    expect(cardText(rejectAfter.body.value)).toContain('Approved by');
    const q = new Queue(jobQueueName('contoso'), { connection: t.redis, prefix: t.prefix });
    const all = await q.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed']);
    await q.close();
    expect(all.filter((j) => j.name === 'approve').map((j) => j.id)).toEqual([`${runId}-approve`]);
    expect(t.agent.jobsOf('approve', runId)).toHaveLength(1);
    expect((await runStore().get(runId))?.state).toBe('approved');

    // Progress: started is posted; the next progress after the interval; one that comes too soon is delayed.
    let n = t.connector.updates(cardId).length;
    await t.agent.report(runId, 'approve', { kind: 'started' });
    await t.connector.waitFor(() => t.connector.updates(cardId).length === n + 1, 'the started update');
    expect((await runStore().get(runId))?.state).toBe('running');
    t.clock.advance(2_000);
    await t.agent.report(runId, 'approve', { kind: 'progress', progress: { phase: 'approving', done: 1, total: 2 } });
    await t.connector.waitFor(() => t.connector.updates(cardId).length === n + 2, 'the first progress update');
    expect(cardText(cardOf(t.connector.updates(cardId).at(-1)))).toContain('1 of 2');
    n = t.connector.updates(cardId).length;

    const early = await t.agent.report(runId, 'approve', { kind: 'progress', progress: { phase: 'approving', done: 2, total: 2, counts: { approved: 2 } } });
    const reports = t.agent.reportQueue;
    await waitForState(reports, early, 'delayed');
    expect(t.connector.updates(cardId).length).toBe(n);
    t.clock.advance(2_000);
    const delayedJob = await reports.getJob(early);
    await delayedJob?.promote();
    await t.connector.waitFor(() => t.connector.updates(cardId).length === n + 1, 'the delayed progress update');
    expect(cardText(cardOf(t.connector.updates(cardId).at(-1)))).toContain('2 of 2');

    // Result: final card in place plus a results card in the thread.
    const posts = t.connector.posts().length;
    await t.agent.report(runId, 'approve', {
      kind: 'result',
      result: {
        type: 'approve',
        matched: 3,
        approved: 1,
        alreadyApproved: 1,
        failed: 1,
        failures: [{ cause: 'no-privilege', title: 'The CRM user lacks the Approve Email privilege', remediation: 'Give the service account the privilege.', count: 1, sample: ['bob@contoso.com'] }],
        crmRequests: 4,
        durationMs: 1200,
      },
    });
    await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
    const results = cardText(cardOf(t.connector.posts().at(-1)));
    expect(results).toContain('Already approved');
    expect(results).toContain('Give the service account the privilege.');
    expect(results).toContain('bob@contoso.com');
    expect(cardText(cardOf(t.connector.updates(cardId).at(-1)))).toContain('Finished: 1 approved');
    expect((await runStore().get(runId))?.state).toBe('succeeded');

    // A late progress report (older seq semantics: the run has ended) changes nothing.
    const finalCount = t.connector.updates(cardId).length;
    const late = await t.agent.report(runId, 'approve', { kind: 'progress', progress: { phase: 'approving', done: 1, total: 2 } });
    await waitForState(reports, late, 'completed');
    expect(t.connector.updates(cardId).length).toBe(finalCount);
  });

  it('rejects: card says who rejected, nothing runs', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId } = await planned('approve mailboxes', OPERATOR, { matched: 2, toChange: 2, sample: ['a@contoso.com'] });
    const res = await click(APPROVER, 'run.reject', runId, cardId);
    expect(cardText(res.body.value)).toContain(`Rejected by ${APPROVER.name}`);
    expect(cardText(cardOf(t.connector.updates(cardId).at(-1)))).toContain(`Rejected by ${APPROVER.name}`);
    const again = await click(APPROVER, 'run.approve', runId, cardId);
    expect(cardText(again.body.value)).toContain('Rejected by');
    expect((await runStore().get(runId))?.state).toBe('rejected');
    expect(t.agent.jobsOf('approve')).toHaveLength(0);
  });

  it('expires: a click after APPROVAL_TTL_MINUTES shows Expired and nothing runs', async () => {
    h = await startHarness({ env: { APPROVAL_TTL_MINUTES: '30' } });
    const t = harness();
    const { runId, cardId } = await planned('approve mailboxes pending', OPERATOR, { matched: 2, toChange: 2, sample: [] });
    t.clock.advance(31 * 60_000);
    const res = await click(APPROVER, 'run.approve', runId, cardId);
    expect(cardText(res.body.value)).toContain('Expired');
    expect(cardText(cardOf(t.connector.updates(cardId).at(-1)))).toContain('Expired');
    expect((await runStore().get(runId))?.state).toBe('expired');
    expect(t.agent.jobsOf('approve')).toHaveLength(0);
  });

  it('drops a report with a bad signature', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId } = await planned('approve mailboxes', OPERATOR, { matched: 2, toChange: 2, sample: [] });
    const forger = new EnvelopeSigner({ key: 'another-key-that-is-long-enough-0123456789' });
    const q = new Queue(reportQueueName('contoso'), { connection: t.redis, prefix: t.prefix });
    const opts = reportAddOptions(runId, 50);
    await q.add('result', signReport(forger, { runId, deployment: 'contoso', jobType: 'approve', seq: 50, at: new Date().toISOString(), event: { kind: 'failed', error: { code: 'X', message: 'forged' } } }), { ...opts, attempts: 1 });
    await waitForState(q, opts.jobId ?? '', 'failed');
    await q.close();
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');
    expect(t.connector.updates(cardId)).toHaveLength(1);
  });
});

describe('test mailboxes', () => {
  it('the requester confirms; another operator may not; results arrive', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId, card, job } = await planned('test mailboxes', OPERATOR, { matched: 2, toChange: 2, sample: ['a@contoso.com', 'b@contoso.com'] }, 'test');
    expect(job.filter).toEqual({ kind: 'untested' });
    expect(card.actions?.map((a) => a.title)).toEqual(['Confirm', 'Cancel']);
    const other = await click(OTHER_OPERATOR, 'run.approve', runId, cardId);
    expect(other.body.value).toContain('operator who asked');
    const ok = await click(OPERATOR, 'run.approve', runId, cardId);
    expect(cardText(ok.body.value)).toContain(`Confirmed by ${OPERATOR.name}`);
    const work = await t.agent.waitForJob('test', runId);
    expect(work.approvedBy).toBe(OPERATOR.aadObjectId);
    const posts = t.connector.posts().length;
    await t.agent.report(runId, 'test', {
      kind: 'result',
      result: { type: 'test', selected: 2, succeeded: 1, failed: 1, noResult: 0, failures: [{ cause: 'auth', title: 'Exchange refused the sign-in', remediation: 'Check the server profile credentials.', count: 1, sample: ['b@contoso.com'] }], crmRequests: 9, durationMs: 65_000 },
    });
    await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
    const results = cardText(cardOf(t.connector.posts().at(-1)));
    expect(results).toContain('Succeeded');
    expect(results).toContain('Check the server profile credentials.');
    expect((await runStore().get(runId))?.state).toBe('succeeded');
  });

  it('shows a failed run with its hint', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId } = await planned('test mailboxes failed', OPERATOR, { matched: 1, toChange: 1, sample: [] }, 'test');
    await click(APPROVER, 'run.approve', runId, cardId);
    await t.agent.waitForJob('test', runId);
    const n = t.connector.updates(cardId).length;
    await t.agent.report(runId, 'test', { kind: 'failed', error: { code: 'CRM_AUTH_FAILED', message: 'CRM refused the service account.', hint: 'Check CRM_USER and its password.' } });
    await t.connector.waitFor(() => t.connector.updates(cardId).length === n + 1, 'the failed card');
    const text = cardText(cardOf(t.connector.updates(cardId).at(-1)));
    expect(text).toContain('CRM refused the service account.');
    expect(text).toContain('Check CRM_USER and its password.');
    expect((await runStore().get(runId))?.state).toBe('failed');
  });
});

describe('an unexpected error in the agent', () => {
  it('reaches the card as what to do, not as the raw exception text', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId } = await planned('approve mailboxes pending', OPERATOR, { matched: 1, toChange: 1, sample: [] });
    await click(APPROVER, 'run.approve', runId, cardId);
    await t.agent.waitForJob('approve', runId);
    const n = t.connector.updates(cardId).length;
    await t.agent.report(runId, 'approve', { kind: 'failed', error: { code: 'INTERNAL', message: "TypeError: Cannot read properties of undefined (reading 'value')" } });
    await t.connector.waitFor(() => t.connector.updates(cardId).length === n + 1, 'the failed card');
    const text = cardText(cardOf(t.connector.updates(cardId).at(-1)));
    expect(text).not.toContain('TypeError');
    expect(text).toContain('Something went wrong inside the on-premises agent');
    expect(text).toContain(`What to do: The details are in the agent's log (run ${runId}). Try again`);
    expect((await runStore().get(runId))?.error?.code).toBe('INTERNAL');
  });
});

const waitForState = waitForJobState;
