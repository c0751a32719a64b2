import { afterEach, describe, expect, it } from 'vitest';
import { storeCertWatchConversation } from '../../bot/cert-watch/cert-watch.ts';
import { RunStore } from '../../bot/runs/run-store.ts';
import { timerJobId, type TimerKind } from '../../bot/runs/run-timers.ts';
import { jobQueueName, timerQueueName } from '../../jobs/deployment.ts';
import { jobTtlMs, newRunId } from '../../jobs/job-options.ts';
import { APPROVER, OPERATOR, clickCard, sendMessage, startHarness, waitForJobState, withQueue, type Harness, SECOND_APPROVER, twoApproversEnv } from '../support/bot-harness.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { NEW_THUMBPRINT, OLD_THUMBPRINT, certPlanResult, certStatusResult } from '../support/cert-fixtures.ts';

/**
 * The run timers of certificate runs, and the certificate watch's scheduler jobs on the same
 * queue. The clock is moved by hand and delayed timer jobs are promoted: nothing waits.
 */

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(): Promise<Harness> {
  h = await startHarness({ env: twoApproversEnv });
  return h;
}

async function fire(t: Harness, runId: string, timer: TimerKind, attempt = 1): Promise<void> {
  await withQueue(t, timerQueueName(t.config.deployment), async (q) => {
    const id = timerJobId(runId, timer, attempt);
    const job = await q.getJob(id);
    if (!job) throw new Error(`no timer ${id}`);
    await job.promote();
    await waitForJobState(q, id, 'completed');
  });
}

async function plannedRotation(t: Harness) {
  const planning = await sendMessage(t, OPERATOR, 'cert rotate');
  const job = await t.agent.waitForJob('cert-plan');
  await t.agent.report(job.runId, 'cert-plan', { kind: 'result', result: certPlanResult() });
  await t.connector.waitFor(() => t.connector.updates(planning.activityId).length === 1, 'the plan card');
  return { runId: job.runId, cardId: planning.activityId };
}

describe('certificate run timers', () => {
  it('no agent answers the plan: "cannot be planned" with what to do', async () => {
    const t = await start();
    const planning = await sendMessage(t, OPERATOR, 'cert rotate');
    const job = await t.agent.waitForJob('cert-plan');
    t.clock.advance(jobTtlMs['cert-plan'] + 3 * 60_000);
    await fire(t, job.runId, 'plan-timeout');
    const text = cardText(cardOf(t.connector.updates(planning.activityId).at(-1)));
    expect(text).toContain('could not be planned: No on-premises agent answered within 15 minutes.');
    expect(text).toContain('Nothing was changed.');
    expect((await new RunStore({ redis: t.redis, prefix: t.prefix }).get(job.runId))?.state).toBe('plan-failed');
  });

  it('an unanswered rotation plan expires: the plan card without buttons', async () => {
    const t = await start();
    const { runId, cardId } = await plannedRotation(t);
    t.clock.advance(t.config.approvalTtlMinutes * 60_000 + 1_000);
    await fire(t, runId, 'approval-expiry');
    const card = cardOf(t.connector.updates(cardId).at(-1));
    expect(cardText(card)).toContain('Expired: the approval window ended');
    expect(card.actions ?? []).toEqual([]);
  });

  it('a rotation no agent started halts (resumable); the first attempt\'s start timeout does nothing to attempt 2', async () => {
    const t = await start();
    const store = new RunStore({ redis: t.redis, prefix: t.prefix });
    const { runId, cardId } = await plannedRotation(t);
    await clickCard(t, APPROVER, 'run.approve', runId, cardId);
    await t.agent.waitForJob('cert-rotate', runId);
    t.clock.advance(jobTtlMs['cert-rotate'] + 3 * 60_000);
    await fire(t, runId, 'start-timeout');
    const halted = cardOf(t.connector.updates(cardId).at(-1));
    expect(cardText(halted)).toContain('No on-premises agent started the rotation');
    expect(cardText(halted)).toContain('Halted: no agent started the rotation before it expired; nothing was changed.');
    expect(cardText(halted)).not.toContain('a step failed');
    // Nothing changed CRM's registration: nothing to roll back, and it can be abandoned.
    expect(halted.actions?.map((a) => a.title)).toEqual(['Resume', 'Abandon']);
    expect((await store.get(runId))?.state).toBe('halted');
    // Halted is not final: the rotation keeps the deployment's one certificate change.
    expect(await store.certActive('contoso')).toBe(runId);

    // Resume (attempt 2), then attempt 1's start timeout fires again (a retry): attempt 2 stays approved.
    await clickCard(t, SECOND_APPROVER, 'cert.resume', runId, cardId);
    expect((await store.get(runId))).toMatchObject({ state: 'approved', attempt: 2 });
    await withQueue(t, timerQueueName(t.config.deployment), async (q) => {
      const first = await q.getJob(timerJobId(runId, 'start-timeout'));
      await first?.remove();
      await q.add('start-timeout', { runId, timer: 'start-timeout', dueAt: t.clock.now() }, { jobId: `${runId}-start-timeout-again` });
      await waitForJobState(q, `${runId}-start-timeout-again`, 'completed');
    });
    expect((await store.get(runId))?.state).toBe('approved');
    // Attempt 2's own timer does act.
    t.clock.advance(jobTtlMs['cert-rotate'] + 3 * 60_000);
    await fire(t, runId, 'start-timeout', 2);
    expect((await store.get(runId))).toMatchObject({ state: 'halted', attempt: 2 });
  });
});

describe('start timeouts of certificate changes release the active change when they end the run', () => {
  it('a rollback without a rotation (an older record) that no agent started ends failed and no longer holds the cert-active key', async () => {
    const t = await start();
    const store = new RunStore({ redis: t.redis, prefix: t.prefix, now: () => t.clock.now() });
    const runId = newRunId();
    await store.create({
      runId,
      deployment: 'contoso',
      kind: 'cert-rollback',
      state: 'awaiting-approval',
      requester: { aadObjectId: OPERATOR.aadObjectId, name: OPERATOR.name },
      conversation: { channelId: 'msteams', serviceUrl: t.connector.url, conversation: { id: t.conversationId }, bot: { id: '28:setup-bot' } },
      plan: certPlanResult(),
      rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT },
      expiresAtMs: t.clock.now() + 60_000,
    });
    expect((await store.approveCert(runId, 'contoso', undefined, { approval: { decision: 'approved', decidedBy: { aadObjectId: APPROVER.aadObjectId, name: APPROVER.name }, decidedAt: new Date(t.clock.now()).toISOString() } })).ok).toBe(true);
    expect(await store.certActive('contoso')).toBe(runId);
    t.clock.advance(jobTtlMs['cert-rollback'] + 3 * 60_000);
    await withQueue(t, timerQueueName(t.config.deployment), async (q) => {
      await q.add('start-timeout', { runId, timer: 'start-timeout', dueAt: t.clock.now() }, { jobId: `${runId}-start-timeout` });
      await waitForJobState(q, `${runId}-start-timeout`, 'completed');
    });
    expect(await store.get(runId)).toMatchObject({ state: 'failed', error: { code: 'JOB_NOT_STARTED' } });
    expect(await store.certActive('contoso')).toBeUndefined();
  });
});

describe('the certificate watch on the timer queue', () => {
  it('a cert-watch scheduler job goes to the watch (not parsed as a run timer); its cert-status result ends the run without a card of its own', async () => {
    const t = await start();
    const store = new RunStore({ redis: t.redis, prefix: t.prefix });
    // No conversation stored: the job completes and starts nothing.
    await withQueue(t, timerQueueName(t.config.deployment), async (q) => {
      await q.add('cert-watch', {}, { jobId: 'watch-1' });
      await waitForJobState(q, 'watch-1', 'completed');
    });
    expect(t.agent.jobsOf('cert-status')).toHaveLength(0);

    const reference = { channelId: 'msteams', serviceUrl: t.connector.url, conversation: { id: t.conversationId }, bot: { id: '28:setup-bot' } };
    await storeCertWatchConversation({ redis: t.redis, config: t.config }, reference);
    await withQueue(t, timerQueueName(t.config.deployment), async (q) => {
      await q.add('cert-watch', {}, { jobId: 'watch-2' });
      await waitForJobState(q, 'watch-2', 'completed');
    });
    const job = await t.agent.waitForJob('cert-status');
    expect((await store.get(job.runId))?.kind).toBe('cert-watch');
    const posts = t.connector.posts().length;
    await t.agent.report(job.runId, 'cert-status', { kind: 'result', result: certStatusResult({ daysLeft: 200, agree: true, findings: [] }) });
    const deadline = Date.now() + 10_000;
    while ((await store.get(job.runId))?.state !== 'succeeded' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect((await store.get(job.runId))?.state).toBe('succeeded');
    // Far from expiry: the watch posts nothing, and the run has no card to update.
    expect(t.connector.posts().length).toBe(posts);
    expect(t.connector.updates()).toEqual([]);
    await withQueue(t, jobQueueName(t.config.deployment), async (q) => {
      expect((await q.getJobs(['completed', 'waiting', 'active'])).map((j) => j.name)).toEqual(['cert-status']);
    });
  });
});
