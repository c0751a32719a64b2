import type { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunStore } from '../../bot/runs/run-store.ts';
import type { RunTimerScheduler } from '../../bot/runs/run-timers.ts';
import { REDIS_UNAVAILABLE_MESSAGE } from '../../bot/user-facing-error.ts';
import { jobQueueName, reportQueueName } from '../../jobs/deployment.ts';
import type { ApproveResult } from '../../jobs/job-types.ts';
import { APPROVER, OPERATOR, clickCard, runStoreOf, sendMessage, startHarness, waitForJobState, withQueue as withHarnessQueue, type Harness, type HarnessOptions, type User } from '../support/bot-harness.ts';
import { cardOf, cardText, type CapturedCall } from '../support/fake-connector.ts';

/**
 * How the bot writes a run's card when writes race or Teams is away: real Redis (unique prefix), the
 * bot's relay and timers, the fake connector. Poster retries use the harness's instant sleep; BullMQ
 * backoffs are skipped by promoting the delayed report.
 */
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

const click = async (from: User, verb: string, runId: string, cardId: string): Promise<unknown> =>
  (await clickCard(harness(), from, verb, runId, cardId)).body.value;

async function planned(): Promise<{ runId: string; cardId: string }> {
  const t = harness();
  const planning = await say(OPERATOR, 'approve mailboxes pending');
  const job = await t.agent.waitForJob('plan');
  await t.agent.report(job.runId, 'plan', { kind: 'result', result: { type: 'plan', action: 'approve', matched: 2, toChange: 2, sample: [] } });
  await t.connector.waitFor(() => t.connector.updates(planning.activityId).length === 1, 'the plan card');
  return { runId: job.runId, cardId: planning.activityId };
}

/** Planned, approved, started: the card shows the run going. */
async function running(options: HarnessOptions = {}): Promise<{ runId: string; cardId: string }> {
  h = await startHarness(options);
  const t = harness();
  const p = await planned();
  expect(cardText(await click(APPROVER, 'run.approve', p.runId, p.cardId))).toContain('Approved by');
  await t.agent.waitForJob('approve', p.runId);
  const n = t.connector.updates(p.cardId).length;
  await t.agent.report(p.runId, 'approve', { kind: 'started' });
  await t.connector.waitFor(() => t.connector.updates(p.cardId).length === n + 1, 'the started card');
  return p;
}

const result: ApproveResult = { type: 'approve', matched: 2, approved: 2, alreadyApproved: 0, failed: 0, failures: [], crmRequests: 2, durationMs: 900 };

const runStore = (): RunStore => runStoreOf(harness());

const withQueue = <T>(name: string, use: (q: Queue) => Promise<T>): Promise<T> => withHarnessQueue(harness(), name, use);

const waitForState = (jobId: string, state: string, timeoutMs = 10_000): Promise<void> =>
  withQueue(reportQueueName('contoso'), (q) => waitForJobState(q, jobId, state, timeoutMs));

describe('a slow progress update and the final card', () => {
  it('the final card lands after the progress update that was in flight, and stays', async () => {
    const { runId, cardId } = await running();
    const t = harness();
    t.clock.advance(2_000);
    const held = t.connector.holdNextUpdate();
    await t.agent.report(runId, 'approve', { kind: 'progress', progress: { phase: 'approving', done: 1, total: 2 } });
    await held.arrived; // the progress PUT is at "Teams", retrying, not answered yet

    const posts = t.connector.posts().length;
    const final = await t.agent.report(runId, 'approve', { kind: 'result', result });
    // The final report waits for the card lock: nothing changes while the progress write is in flight.
    await waitForState(final, 'delayed');
    expect((await runStore().get(runId))?.state).toBe('running');

    held.release();
    await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
    await waitForState(final, 'completed');
    const updates = t.connector.updates(cardId);
    expect(cardText(cardOf(updates.at(-2)))).toContain('1 of 2');
    expect(cardText(cardOf(updates.at(-1)))).toContain('Finished: 2 approved');
    expect((await runStore().get(runId))?.state).toBe('succeeded');
    expect(await t.redis.exists(runStore().lockKey(runId))).toBe(0);
  });
});

describe('a Teams outage longer than the poster retries', () => {
  it('keeps the final report until Teams takes the card; the results card is sent exactly once', async () => {
    const { runId, cardId } = await running();
    const t = harness();
    const posts = t.connector.posts().length;
    const updates = t.connector.updates(cardId).length;
    // Six 503s for card updates: one more than the poster's five attempts.
    t.connector.failNext(6, 503, 'PUT');
    const final = await t.agent.report(runId, 'approve', { kind: 'result', result });

    // First delivery: the run card failed after the poster's retries, the results card went out;
    // the report is not marked and goes back to BullMQ with backoff.
    await waitForState(final, 'delayed');
    expect(t.connector.posts()).toHaveLength(posts + 1);
    expect(t.connector.updates(cardId)).toHaveLength(updates);
    const stuck = await runStore().get(runId);
    expect(stuck?.state).toBe('succeeded');
    const finalSeq = stuck?.resultsSentSeq ?? -1;
    expect(finalSeq).toBeGreaterThan(0);
    expect(stuck?.finalPostedSeq).toBeLessThan(finalSeq);

    // Teams is back (one more 503, then fine): the redelivery posts the final card, no second results card.
    await withQueue(reportQueueName('contoso'), async (q) => (await q.getJob(final))?.promote());
    await waitForState(final, 'completed');
    expect(cardText(cardOf(t.connector.updates(cardId).at(-1)))).toContain('Finished: 2 approved');
    expect(t.connector.posts()).toHaveLength(posts + 1);
    expect(cardText(cardOf(t.connector.posts().at(-1)))).toContain('Results');
    expect((await runStore().get(runId))?.finalPostedSeq).toBe(finalSeq);
  });
});

describe('safety timers are scheduled before anything changes', () => {
  const redisDown = (): Error => new Error("Stream isn't writeable and enableOfflineQueue options is false");
  const failing = (timer: string) => (real: RunTimerScheduler): RunTimerScheduler => ({
    schedule: (runId, kind, dueAt) => (kind === timer ? Promise.reject(redisDown()) : real.schedule(runId, kind, dueAt)),
    close: () => real.close(),
  });

  it('an approval whose start timeout cannot be scheduled is refused with a clear message and changes nothing', async () => {
    h = await startHarness({ timers: failing('start-timeout') });
    const t = harness();
    const { runId, cardId } = await planned();
    const reply = await click(APPROVER, 'run.approve', runId, cardId);
    expect(reply).toBe(`Could not approve: ${REDIS_UNAVAILABLE_MESSAGE} Nothing was changed.`);
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');
    const jobs = await withQueue(jobQueueName('contoso'), (q) => q.getJobs(['waiting', 'active', 'completed', 'delayed']));
    expect(jobs.map((j) => j.name)).toEqual(['plan']);
    expect(t.connector.updates(cardId)).toHaveLength(1);
  });

  it('a command whose plan timeout cannot be scheduled says so and enqueues nothing', async () => {
    h = await startHarness({ timers: failing('plan-timeout') });
    const t = harness();
    const card = await say(OPERATOR, 'approve mailboxes pending');
    const update = t.connector.updates(card.activityId);
    expect(update).toHaveLength(1);
    const text = cardText(cardOf(update[0]));
    expect(text).toContain('Could not start');
    expect(text).toContain(REDIS_UNAVAILABLE_MESSAGE);
    const counts = await withQueue(jobQueueName('contoso'), (q) => q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'));
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
    const runs = await t.redis.keys(`${t.prefix}:run:*`);
    expect(runs).toHaveLength(1);
    expect((await runStore().get(runs[0]!.split(':').at(-1)!))?.state).toBe('plan-failed');
  });

  it('a run whose record cannot make a job is never approved', async () => {
    h = await startHarness();
    const t = harness();
    const store = runStore();
    const run = await store.create({
      runId: 'nofilter01',
      deployment: 'contoso',
      kind: 'approve',
      state: 'planning',
      requester: { aadObjectId: OPERATOR.aadObjectId, name: OPERATOR.name },
      conversation: { channelId: 'msteams', serviceUrl: t.connector.url, conversation: { id: t.conversationId }, bot: { id: '28:setup-bot' } },
    });
    await store.transition(run.runId, ['planning'], 'awaiting-approval', { plan: { type: 'plan', action: 'approve', matched: 1, toChange: 1, sample: [] }, expiresAt: t.clock.now() + 60_000 });
    const reply = await click(APPROVER, 'run.approve', run.runId, 'm-none');
    expect(reply).toContain('its record is incomplete. Nothing was changed');
    expect((await store.get(run.runId))?.state).toBe('awaiting-approval');
    expect(t.agent.jobsOf('approve')).toHaveLength(0);
  });
});
