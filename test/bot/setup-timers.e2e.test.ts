import { afterEach, describe, expect, it } from 'vitest';
import { RunStore } from '../../bot/runs/run-store.ts';
import { timerJobId, type TimerKind } from '../../bot/runs/run-timers.ts';
import { timerQueueName } from '../../jobs/deployment.ts';
import { jobTtlMs } from '../../jobs/job-options.ts';
import { APPROVER, OPERATOR, clickCard, invokeActivity, sendMessage, startHarness, twoApproversEnv, waitForJobState, withQueue, type Harness } from '../support/bot-harness.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { setupPlan } from './setup-fixtures.ts';

/** The run timers of the runbook's runs: plan and preflight unanswered, plan expired, run never started. */

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function fire(t: Harness, runId: string, timer: TimerKind, attempt = 1): Promise<void> {
  await withQueue(t, timerQueueName(t.config.deployment), async (q) => {
    const id = timerJobId(runId, timer, attempt);
    const job = await q.getJob(id);
    if (!job) throw new Error(`no timer ${id}`);
    await job.promote();
    await waitForJobState(q, id, 'completed');
  });
}

async function planned(t: Harness) {
  const planning = await sendMessage(t, OPERATOR, 'run setup');
  const job = await t.agent.waitForJob('setup-plan');
  await t.agent.report(job.runId, 'setup-plan', { kind: 'result', result: setupPlan('setup') });
  await t.connector.waitFor(() => t.connector.updates(planning.activityId).length === 1, 'the plan card');
  return { runId: job.runId, cardId: planning.activityId };
}

const latest = (t: Harness, cardId: string) => cardOf(t.connector.updates(cardId).at(-1));

describe('runbook run timers', () => {
  it('no agent answers the plan or the preflight: what to do, nothing changed', async () => {
    const t = h = await startHarness({ env: twoApproversEnv });
    const store = new RunStore({ redis: t.redis, prefix: t.prefix });
    const planning = await sendMessage(t, OPERATOR, 'profile create');
    const plan = await t.agent.waitForJob('setup-plan');
    const checking = await sendMessage(t, OPERATOR, 'preflight');
    const preflight = await t.agent.waitForJob('preflight');
    t.clock.advance(jobTtlMs['setup-plan'] + 3 * 60_000);
    await fire(t, plan.runId, 'plan-timeout');
    await fire(t, preflight.runId, 'plan-timeout');
    expect(cardText(latest(t, planning.activityId))).toContain('The plan could not be made: No on-premises agent answered within 15 minutes.');
    expect(cardText(latest(t, checking.activityId))).toContain('The checks could not be run: No on-premises agent answered within 5 minutes.');
    expect((await store.get(plan.runId))?.state).toBe('plan-failed');
    expect((await store.get(preflight.runId))?.state).toBe('failed');
  });

  it('an unanswered plan expires: the plan without buttons', async () => {
    const t = h = await startHarness({ env: twoApproversEnv });
    const { runId, cardId } = await planned(t);
    t.clock.advance(t.config.approvalTtlMinutes * 60_000 + 1_000);
    await fire(t, runId, 'approval-expiry');
    const card = latest(t, cardId);
    expect(cardText(card)).toContain('Expired: the approval window ended');
    expect(card.actions ?? []).toEqual([]);
    expect((await new RunStore({ redis: t.redis, prefix: t.prefix }).get(runId))?.state).toBe('expired');
  });

  it('a run no agent started halts with Retry step and Cancel, keeping the certificate slot', async () => {
    const t = h = await startHarness({ env: twoApproversEnv });
    const store = new RunStore({ redis: t.redis, prefix: t.prefix });
    const { runId, cardId } = await planned(t);
    const data = { runId, 'checklist-hybrid-connector': 'true', 'checklist-exchange-enabled': 'true' };
    await clickCard(t, OPERATOR, 'setup.confirm-checklist', runId, cardId, invokeActivity(t, OPERATOR, 'setup.confirm-checklist', data, cardId));
    await clickCard(t, APPROVER, 'run.approve', runId, cardId);
    await t.agent.waitForJob('setup-run', runId);
    t.clock.advance(jobTtlMs['setup-run'] + 3 * 60_000);
    await fire(t, runId, 'start-timeout');
    const card = latest(t, cardId);
    expect(cardText(card)).toContain('Halted: no agent started the run before its job expired; this attempt changed nothing.');
    expect(cardText(card)).toContain('What to do: Start the agent');
    expect(card.actions?.map((a) => a.title)).toEqual(['Retry step', 'Cancel']);
    expect((await store.get(runId))?.state).toBe('halted');
    expect(await store.certActive('contoso')).toBe(runId);
  });
});
