import type { Queue} from 'bullmq';
import { type Job } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { startBot } from '../../bot/bot-server.ts';
import type { RunStore } from '../../bot/runs/run-store.ts';
import type { BotServices } from '../../bot/bot-services.ts';
import type { AdaptiveCardJson } from '../../bot/cards/common/card-kit.ts';
import { TIMER_GRACE_MS, timerJobId, type TimerData, type TimerKind } from '../../bot/runs/run-timers.ts';
import { TimerWorker, duration } from '../../bot/runs/timer-worker.ts';
import { silentLogger } from '../../core/logger.ts';
import { jobQueueName, reportQueueName, timerQueueName } from '../../jobs/deployment.ts';
import { jobTtlMs } from '../../jobs/job-options.ts';
import { APPROVER, OPERATOR, clickCard, runStoreOf, sendMessage, startHarness, waitForJobState, withQueue as withHarnessQueue, type Harness, type User } from '../support/bot-harness.ts';
import { cardOf, cardText, type CapturedCall } from '../support/fake-connector.ts';

/**
 * Run timers end to end: real Redis (unique prefix), the bot's timer worker, the ManualClock. A test
 * advances the clock past a timer's time and promotes the delayed timer job, so nothing waits for
 * real minutes; the worker checks the injected clock before it acts.
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

const MINUTE = 60_000;

const say = (from: User, text: string, bot = 0): Promise<CapturedCall> => sendMessage(harness(), from, text, bot);

const click = async (from: User, verb: string, runId: string, cardId: string): Promise<unknown> =>
  (await clickCard(harness(), from, verb, runId, cardId)).body.value;

async function planned(command: string, plan = { matched: 2, toChange: 2, sample: ['a@contoso.com'] }) {
  const t = harness();
  const planning = await say(OPERATOR, command);
  const job = await t.agent.waitForJob('plan');
  await t.agent.report(job.runId, 'plan', { kind: 'result', result: { type: 'plan', action: 'approve', ...plan } });
  await t.connector.waitFor(() => t.connector.updates(planning.activityId).length === 1, 'the plan card');
  return { runId: job.runId, cardId: planning.activityId };
}

async function approved(): Promise<{ runId: string; cardId: string }> {
  const t = harness();
  const p = await planned('approve mailboxes pending');
  expect(cardText(await click(APPROVER, 'run.approve', p.runId, p.cardId))).toContain('Approved by');
  await t.agent.waitForJob('approve', p.runId);
  return p;
}

const runStore = (): RunStore => runStoreOf(harness());

const withQueue = <T>(name: string, use: (q: Queue) => Promise<T>): Promise<T> => withHarnessQueue(harness(), name, use);

/** The delayed timer job of the run: its delay as scheduled. */
async function timerDelay(runId: string, timer: TimerKind): Promise<number | undefined> {
  return withQueue(timerQueueName('contoso'), async (q) => {
    const job = await q.getJob(timerJobId(runId, timer));
    if (!job) return undefined;
    expect(await job.getState()).toBe('delayed');
    return job.delay;
  });
}

/** Promotes the delayed timer job and waits until the worker has handled it (`completed`, or `delayed` again when it is early). */
async function fire(runId: string, timer: TimerKind, expected: 'completed' | 'delayed' = 'completed'): Promise<void> {
  await withQueue(timerQueueName('contoso'), async (q) => {
    const id = timerJobId(runId, timer);
    const job = await q.getJob(id);
    if (!job) throw new Error(`no timer ${id}`);
    await job.promote();
    await waitForState(q, id, expected);
  });
}

async function jobIds(): Promise<string[]> {
  return withQueue(jobQueueName('contoso'), async (q) => {
    const jobs = await q.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed', 'paused', 'prioritized']);
    return jobs.map((j) => j.id ?? '').sort();
  });
}

const waitForState = waitForJobState;

describe('plan timeout', () => {
  it('says no agent answered when the plan job expires unanswered; plan-failed, nothing else runs', async () => {
    h = await startHarness();
    const t = harness();
    const planning = await say(OPERATOR, 'approve mailboxes pending');
    expect(cardText(cardOf(planning))).toContain('Planning');
    const job = await t.agent.waitForJob('plan'); // taken, never answered
    const runId = job.runId;
    expect(await timerDelay(runId, 'plan-timeout')).toBe(jobTtlMs.plan + TIMER_GRACE_MS);

    // Fired before its time (by the bot's clock): it waits again and changes nothing.
    await fire(runId, 'plan-timeout', 'delayed');
    expect(t.connector.updates(planning.activityId)).toHaveLength(0);
    expect((await runStore().get(runId))?.state).toBe('planning');

    t.clock.advance(jobTtlMs.plan + TIMER_GRACE_MS);
    await fire(runId, 'plan-timeout');
    expect(t.connector.updates(planning.activityId)).toHaveLength(1);
    const card = cardOf(t.connector.updates(planning.activityId)[0]);
    const text = cardText(card);
    expect(text).toContain('No on-premises agent answered within 15 minutes.');
    expect(text).toContain('Check the agent is running and connected (`@setup status` shows when it last reported), then ask again.');
    expect(card.actions).toBeUndefined();
    const run = await runStore().get(runId);
    expect(run?.state).toBe('plan-failed');
    expect(run?.error?.code).toBe('AGENT_NO_ANSWER');

    // A plan that arrives after that is dropped: the card stays, no approval is offered, no job.
    const late = await t.agent.report(runId, 'plan', { kind: 'result', result: { type: 'plan', action: 'approve', matched: 2, toChange: 2, sample: [] } });
    await withQueue(reportQueueName('contoso'), (q) => waitForState(q, late, 'completed'));
    expect(t.connector.updates(planning.activityId)).toHaveLength(1);
    expect((await runStore().get(runId))?.state).toBe('plan-failed');
    expect(await timerDelay(runId, 'approval-expiry')).toBeUndefined();
    expect(await jobIds()).toEqual([`${runId}-plan`]);
  });

  it('a status check nobody answers says so on the status card', async () => {
    h = await startHarness();
    const t = harness();
    const checking = await say(OPERATOR, 'status');
    const job = await t.agent.waitForJob('status');
    expect(await timerDelay(job.runId, 'plan-timeout')).toBe(jobTtlMs.status + TIMER_GRACE_MS);
    t.clock.advance(jobTtlMs.status + TIMER_GRACE_MS);
    await fire(job.runId, 'plan-timeout');
    expect(t.connector.updates(checking.activityId)).toHaveLength(1);
    const text = cardText(cardOf(t.connector.updates(checking.activityId)[0]));
    expect(text).toContain('Could not get the mailbox counts: No on-premises agent answered within 5 minutes.');
    expect(text).toContain('no agent has reported');
    expect((await runStore().get(job.runId))?.state).toBe('failed');
  });

  it('survives a bot restart: a new instance fires the timer the old one scheduled', async () => {
    h = await startHarness();
    const t = harness();
    const planning = await say(OPERATOR, 'approve mailboxes pending');
    const { runId } = await t.agent.waitForJob('plan');
    await t.bots[0]!.close();
    t.bots.push(await startBot(t.config, { redis: t.redis, logger: silentLogger(), now: t.clock.now, host: '127.0.0.1' }));
    t.clock.advance(jobTtlMs.plan + TIMER_GRACE_MS);
    await fire(runId, 'plan-timeout');
    expect(cardText(cardOf(t.connector.updates(planning.activityId)[0]))).toContain('No on-premises agent answered');
    expect((await runStore().get(runId))?.state).toBe('plan-failed');
  });
});

describe('approval expiry', () => {
  it('expires the plan card for everyone without a click; a later click stays expired and starts nothing', async () => {
    h = await startHarness({ env: { APPROVAL_TTL_MINUTES: '30' } });
    const t = harness();
    const { runId, cardId } = await planned('approve mailboxes pending');
    expect(cardOf(t.connector.updates(cardId)[0]).actions).toHaveLength(2);
    expect(await timerDelay(runId, 'approval-expiry')).toBe(30 * MINUTE);

    t.clock.advance(30 * MINUTE);
    await fire(runId, 'approval-expiry');
    const updates = t.connector.updates(cardId);
    expect(updates).toHaveLength(2);
    expect(updates[1]?.method).toBe('PUT');
    const expired = cardOf(updates[1]);
    expect(cardText(expired)).toContain('Expired: the approval window ended');
    expect(expired.actions).toBeUndefined();
    expect((await runStore().get(runId))?.state).toBe('expired');

    const reply = await click(APPROVER, 'run.approve', runId, cardId);
    expect(cardText(reply)).toContain('Expired');
    expect((await runStore().get(runId))?.state).toBe('expired');
    expect(t.agent.jobsOf('approve')).toHaveLength(0);
    expect(await jobIds()).toEqual([`${runId}-plan`]);
  });
});

describe('start timeout', () => {
  it('fails an approved run no agent started before the job expired, with what to do', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId } = await approved(); // the agent takes the approve job and never starts it
    expect(await timerDelay(runId, 'start-timeout')).toBe(jobTtlMs.approve + TIMER_GRACE_MS);
    const n = t.connector.updates(cardId).length;

    t.clock.advance(jobTtlMs.approve + TIMER_GRACE_MS);
    await fire(runId, 'start-timeout');
    expect(t.connector.updates(cardId)).toHaveLength(n + 1);
    const text = cardText(cardOf(t.connector.updates(cardId).at(-1)));
    expect(text).toContain('Failed (JOB_NOT_STARTED): No on-premises agent started the job within 24 hours');
    expect(text).toContain('What to do: Start the agent');
    const run = await runStore().get(runId);
    expect(run?.state).toBe('failed');
    expect(run?.error?.hint).toContain('ask again');

    // A started report after that changes nothing.
    const late = await t.agent.report(runId, 'approve', { kind: 'started' });
    await withQueue(reportQueueName('contoso'), (q) => waitForState(q, late, 'completed'));
    expect(t.connector.updates(cardId)).toHaveLength(n + 1);
    expect((await runStore().get(runId))?.state).toBe('failed');
  });
});

describe('timers that find the run moved on', () => {
  it('do nothing: no state change, no card update', async () => {
    h = await startHarness();
    const t = harness();
    const { runId, cardId } = await planned('approve mailboxes pending');

    // The plan arrived: the plan timeout finds awaiting-approval.
    t.clock.advance(jobTtlMs.plan + TIMER_GRACE_MS);
    await fire(runId, 'plan-timeout');
    expect(t.connector.updates(cardId)).toHaveLength(1);
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');

    // Approved in time: the approval expiry finds approved.
    await click(APPROVER, 'run.approve', runId, cardId);
    await t.agent.waitForJob('approve', runId);
    const afterApproval = t.connector.updates(cardId).length;
    t.clock.advance(60 * MINUTE);
    await fire(runId, 'approval-expiry');
    expect(t.connector.updates(cardId)).toHaveLength(afterApproval);
    expect((await runStore().get(runId))?.state).toBe('approved');

    // The agent started: the start timeout finds running.
    await t.agent.report(runId, 'approve', { kind: 'started' });
    await t.connector.waitFor(() => t.connector.updates(cardId).length === afterApproval + 1, 'the started update');
    t.clock.advance(jobTtlMs.approve + TIMER_GRACE_MS);
    await fire(runId, 'start-timeout');
    expect(t.connector.updates(cardId)).toHaveLength(afterApproval + 1);
    expect((await runStore().get(runId))?.state).toBe('running');
  });
});

describe('several bot instances', () => {
  it('each timer updates its card once', async () => {
    h = await startHarness({ instances: 2 });
    const t = harness();
    const workers = await withQueue(timerQueueName('contoso'), (q) => q.getWorkers());
    expect(workers.length).toBeGreaterThanOrEqual(2);

    const cards: CapturedCall[] = [];
    for (let i = 0; i < 6; i++) cards.push(await say(OPERATOR, 'status', i % 2));
    await t.connector.waitFor(() => t.agent.jobsOf('status').length === cards.length, 'all status jobs');
    t.clock.advance(jobTtlMs.status + TIMER_GRACE_MS);
    await Promise.all(t.agent.jobsOf('status').map((job) => fire(job.runId, 'plan-timeout')));
    for (const c of cards) {
      expect(t.connector.updates(c.activityId)).toHaveLength(1);
      expect(cardText(cardOf(t.connector.updates(c.activityId)[0]))).toContain('No on-premises agent answered');
    }
    expect(t.connector.updates()).toHaveLength(cards.length);
  });
});

describe('a timer retried after its worker stopped half-way', () => {
  async function setUp() {
    h = await startHarness({ instances: 0 });
    const t = harness();
    const runs = runStore();
    const posted: AdaptiveCardJson[] = [];
    const outage = { left: 0 };
    const poster = {
      updateCard: (_ref: unknown, _id: string, card: AdaptiveCardJson) => {
        if (outage.left > 0) {
          outage.left--;
          return Promise.resolve({ ok: false as const, permanent: false, status: 503, message: 'Service Unavailable' });
        }
        posted.push(card);
        return Promise.resolve({ ok: true as const, id: 'm1' });
      },
    };
    const services = { config: t.config, runs, poster, redis: t.redis, now: t.clock.now, logger: silentLogger() } as unknown as BotServices;
    const worker = new TimerWorker({ services, connection: t.redis });
    const run = await runs.create({
      runId: 'rrrrrrrr01',
      deployment: 'contoso',
      kind: 'approve',
      state: 'planning',
      filter: { kind: 'pending' },
      requester: { aadObjectId: OPERATOR.aadObjectId, name: OPERATOR.name },
      conversation: { channelId: 'msteams', serviceUrl: 'http://127.0.0.1:1/', conversation: { id: 'c' }, bot: { id: 'b' } },
    });
    await runs.patch(run.runId, { cardActivityId: 'm1' });
    const timerJob = (attemptsMade: number): Job => {
      const data: TimerData = { runId: run.runId, timer: 'plan-timeout', dueAt: t.clock.now() };
      return { id: timerJobId(run.runId, 'plan-timeout'), data, attemptsMade, stalledCounter: 0 } as unknown as Job;
    };
    return { runs, posted, worker, runId: run.runId, timerJob, outage };
  }

  it('fails the attempt when Teams does not take the card (so BullMQ retries), and the retry posts it', async () => {
    const { runs, posted, worker, runId, timerJob, outage } = await setUp();
    try {
      outage.left = 1;
      await expect(worker.process(timerJob(0), undefined)).rejects.toMatchObject({ code: 'TEAMS_POST_FAILED', retryable: true });
      expect((await runs.get(runId))?.state).toBe('plan-failed');
      expect(posted).toHaveLength(0);
      await worker.process(timerJob(1), undefined);
      expect(posted).toHaveLength(1);
      expect(cardText(posted[0])).toContain('No on-premises agent answered');
      expect(await h?.redis.exists(runs.lockKey(runId))).toBe(0);
    } finally {
      await worker.close();
    }
  });

  it('posts the card again when the first attempt changed the state; a first attempt that finds it changed does nothing', async () => {
    const { runs, posted, worker, runId, timerJob } = await setUp();
    try {
      await runs.transition(runId, ['planning'], 'plan-failed', { error: { code: 'AGENT_NO_ANSWER', message: 'No on-premises agent answered within 15 minutes.' } });
      await worker.process(timerJob(0), undefined);
      expect(posted).toHaveLength(0);
      await worker.process(timerJob(1), undefined);
      expect(posted).toHaveLength(1);
      expect(cardText(posted[0])).toContain('No on-premises agent answered within 15 minutes.');
    } finally {
      await worker.close();
    }
  });

  it('does not repost a state the agent set', async () => {
    const { runs, posted, worker, runId, timerJob } = await setUp();
    try {
      await runs.transition(runId, ['planning'], 'plan-failed', { error: { code: 'CRM_AUTH_FAILED', message: 'CRM refused the service account.' } });
      await worker.process(timerJob(1), undefined);
      expect(posted).toHaveLength(0);
    } finally {
      await worker.close();
    }
  });
});

describe('duration', () => {
  it('says job lifetimes the way the cards do', () => {
    expect(duration(jobTtlMs.plan)).toBe('15 minutes');
    expect(duration(jobTtlMs.status)).toBe('5 minutes');
    expect(duration(jobTtlMs.approve)).toBe('24 hours');
    expect(duration(60 * MINUTE)).toBe('1 hour');
    expect(duration(MINUTE)).toBe('1 minute');
  });
});
