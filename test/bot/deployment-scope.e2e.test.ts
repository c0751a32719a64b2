import { afterEach, describe, expect, it } from 'vitest';
import { RunStore } from '../../bot/runs/run-store.ts';
import { BullRunTimers, timerJobId } from '../../bot/runs/run-timers.ts';
import { reportQueueName, timerQueueName } from '../../jobs/deployment.ts';
import { APPROVER, OPERATOR, invokeActivity, post, startHarness, waitForJobState, withQueue, type Harness } from '../support/bot-harness.ts';

/** Runs are scoped by deployment: a run recorded for another deployment is an unknown run to this bot. */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const waitForState = (t: Harness, queueName: string, jobId: string, state: string): Promise<void> =>
  withQueue(t, queueName, (q) => waitForJobState(q, jobId, state));

describe('a run of another deployment', () => {
  it('is unknown to clicks, reports and timers: nothing changes, no card is written', async () => {
    h = await startHarness();
    const t = h;
    const store = new RunStore({ redis: t.redis, prefix: t.prefix });
    const run = await store.create({
      runId: 'fabrikam01',
      deployment: 'fabrikam',
      kind: 'approve',
      state: 'planning',
      filter: { kind: 'pending' },
      requester: { aadObjectId: OPERATOR.aadObjectId, name: OPERATOR.name },
      conversation: { channelId: 'msteams', serviceUrl: t.connector.url, conversation: { id: t.conversationId }, bot: { id: '28:setup-bot' } },
    });
    await store.patch(run.runId, { cardActivityId: 'm-foreign' });
    await store.transition(run.runId, ['planning'], 'awaiting-approval', { plan: { type: 'plan', action: 'approve', matched: 1, toChange: 1, sample: [] }, expiresAt: t.clock.now() + 1 });

    const res = await post(t.bots[0]!, invokeActivity(t, APPROVER, 'run.approve', { runId: run.runId }, 'm-foreign'));
    expect((res.body as { value: unknown }).value).toContain('This run is unknown');

    const report = await t.agent.report(run.runId, 'plan', { kind: 'failed', error: { code: 'CRM_AUTH_FAILED', message: 'no' } });
    await waitForState(t, reportQueueName('contoso'), report, 'completed');

    const timers = new BullRunTimers({ connection: t.redis, prefix: t.prefix, deployment: 'contoso', now: t.clock.now });
    t.clock.advance(10);
    await timers.schedule(run.runId, 'approval-expiry', t.clock.now());
    await waitForState(t, timerQueueName('contoso'), timerJobId(run.runId, 'approval-expiry'), 'completed');
    await timers.close();

    expect((await store.get(run.runId))?.state).toBe('awaiting-approval');
    expect(t.agent.jobsOf('approve')).toHaveLength(0);
    expect(t.connector.updates('m-foreign')).toHaveLength(0);
  });
});
