import { scopeStepIds } from '../../../jobs/runbook-types.ts';
import { describe, expect, it } from 'vitest';
import { stepTitles } from '../../../jobs/cert-types.ts';
import { newRunId } from '../../../jobs/job-options.ts';
import { reportQueueName } from '../../../jobs/deployment.ts';
import {
  APPROVER,
  OPERATOR,
  OTHER_OPERATOR,
  SECOND_APPROVER,
  STRANGER,
  clickCard,
  invokeActivity,
  twoApproversEnv,
  waitForJobState,
  withQueue,
  type Harness,
  type User,
} from '../../support/bot-harness.ts';
import { cardOf, cardText } from '../../support/fake-connector.ts';
import { botSession } from '../../support/bot-session.ts';
import { certPlanResult } from '../../support/cert-fixtures.ts';
import { runSteps, setupPlan, setupRunResult } from '../setup-fixtures.ts';

/**
 * resumeRun / cancelRun (bot/run-control.ts), through the card buttons and the typed `resume <run>`
 * / `cancel <run>`: cancel in each state of a runbook run, what is refused, and a resume that clears
 * a cancel asked while the failed attempt ran.
 */

const { start, harness, say, click, runStore, latestCard, reportAndWait } = botSession({ env: twoApproversEnv });

async function planned(from: User, command = 'run setup') {
  const t = harness();
  const planning = await say(from, command);
  const job = await t.agent.waitForJob('setup-plan');
  t.agent.jobs.length = 0;
  await reportAndWait(planning.activityId, job.runId, 'setup-plan', { kind: 'result', result: setupPlan('setup') });
  return { runId: job.runId, cardId: planning.activityId };
}

async function approved(requester: User = OPERATOR) {
  const t = harness();
  const p = await planned(requester);
  const data = { runId: p.runId, 'checklist-hybrid-connector': 'true', 'checklist-exchange-enabled': 'true' };
  await clickCard(t, requester, 'setup.confirm-checklist', p.runId, p.cardId, invokeActivity(t, requester, 'setup.confirm-checklist', data, p.cardId));
  await click(APPROVER, 'run.approve', p.runId, p.cardId);
  await t.agent.waitForJob('setup-run', p.runId);
  return p;
}

async function halted(requester: User = OPERATOR) {
  const p = await approved(requester);
  await reportAndWait(p.cardId, p.runId, 'setup-run', { kind: 'started' });
  harness().clock.advance(5_000);
  await reportAndWait(p.cardId, p.runId, 'setup-run', { kind: 'failed', error: { code: 'GRAPH_FORBIDDEN', message: 'Graph returned 403.', hint: 'Grant admin consent.' }, steps: runSteps('setup', 6, 'failed') });
  return p;
}

describe('cancel', () => {
  it('a plan still planning: the requester types `cancel <run>`; the late plan is dropped', async () => {
    const t = await start();
    const planning = await say(OPERATOR, 'run setup');
    const job = await t.agent.waitForJob('setup-plan');
    const reply = cardText(cardOf(await say(OPERATOR, `cancel ${job.runId}`)));
    expect(reply).toContain(`Cancelled by ${OPERATOR.name}`);
    expect(await runStore().get(job.runId)).toMatchObject({ state: 'cancelled', cancelRequestedBy: { aadObjectId: OPERATOR.aadObjectId } });
    const updates = t.connector.updates(planning.activityId).length;
    const reportJobId = await t.agent.report(job.runId, 'setup-plan', { kind: 'result', result: setupPlan('setup') });
    // The relay took the late plan and dropped it: the report job completed, nothing changed.
    await withQueue(t, reportQueueName('contoso'), (q) => waitForJobState(q, reportJobId, 'completed'));
    expect((await runStore().get(job.runId))?.state).toBe('cancelled');
    expect(t.connector.updates(planning.activityId)).toHaveLength(updates);
    expect(latestCard(planning.activityId).actions ?? []).toEqual([]);
  });

  it('a plan awaiting approval: another operator is refused, an approver cancels it with the button', async () => {
    await start();
    const { runId, cardId } = await planned(OPERATOR);
    const refused = await click(OTHER_OPERATOR, 'run.cancel', runId, cardId);
    expect(String(refused.body.value)).toContain('may cancel it');
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');
    const done = await click(SECOND_APPROVER, 'run.cancel', runId, cardId);
    expect(cardText(done.body.value)).toContain(`Cancelled by ${SECOND_APPROVER.name}. Nothing was run.`);
    expect(latestCard(cardId).actions ?? []).toEqual([]);
    expect((await runStore().get(runId))?.state).toBe('cancelled');
    // Approve after the cancel changes nothing.
    await click(APPROVER, 'run.approve', runId, cardId);
    expect((await runStore().get(runId))?.state).toBe('cancelled');
    expect(harness().agent.jobsOf('setup-run')).toEqual([]);
  });

  it('a running run: the cancel key is set and the agent stops before its next step → cancelled, the certificate slot released', async () => {
    const t = await start();
    const { runId, cardId } = await approved();
    await reportAndWait(cardId, runId, 'setup-run', { kind: 'started' });
    expect(await runStore().certActive('contoso')).toBe(runId);
    const reply = cardText(cardOf(await say(OPERATOR, `cancel ${runId}`)));
    expect(reply).toContain(`Cancel requested by ${OPERATOR.name}: the run stops before its next step`);
    expect(await t.redis.exists(runStore().cancelKey(runId))).toBe(1);
    expect(await t.redis.ttl(runStore().cancelKey(runId))).toBeGreaterThan(23 * 3600);
    expect((await runStore().get(runId))?.state).toBe('running');

    t.clock.advance(5_000);
    const card = cardText(await reportAndWait(cardId, runId, 'setup-run', { kind: 'failed', error: { code: 'CANCELLED', message: 'Cancelled before the next step.' }, steps: runSteps('setup', scopeStepIds.setup.indexOf('restart-services')) }));
    expect(card).toContain(`Cancelled by ${OPERATOR.name} before ${stepTitles['restart-services']}; steps done stay done.`);
    expect((await runStore().get(runId))?.state).toBe('cancelled');
    expect(await runStore().certActive('contoso')).toBeUndefined();
    // Already final.
    const again = cardText(cardOf(await say(OPERATOR, `cancel ${runId}`)));
    expect(again).toContain(`Run ${runId} is already cancelled.`);
  });

  it('a cancel asked while a step runs: the step then fails → cancelled (no Retry), the slot released', async () => {
    const t = await start();
    const { runId, cardId } = await approved();
    await reportAndWait(cardId, runId, 'setup-run', { kind: 'started' });
    await say(OPERATOR, `cancel ${runId}`);
    expect(await t.redis.exists(runStore().cancelKey(runId))).toBe(1);
    // The running step failed before the agent looked at the cancel key.
    t.clock.advance(5_000);
    const card = await reportAndWait(cardId, runId, 'setup-run', { kind: 'failed', error: { code: 'GRAPH_FORBIDDEN', message: 'Graph returned 403.', hint: 'Grant admin consent.' }, steps: runSteps('setup', 3, 'failed') });
    const text = cardText(card);
    expect(text).toContain(`Cancelled by ${OPERATOR.name}: the run failed at ${stepTitles['register-crm']} after the cancel was asked`);
    expect(text).toContain('Cause (GRAPH_FORBIDDEN): Graph returned 403.');
    expect(text).not.toContain('Retry step');
    expect(card.actions ?? []).toEqual([]);
    expect((await runStore().get(runId))?.state).toBe('cancelled');
    expect(await runStore().certActive('contoso')).toBeUndefined();
    const resume = cardText(cardOf(await say(APPROVER, `resume ${runId}`)));
    expect(resume).not.toContain('attempt 2');
    expect(t.agent.jobsOf('setup-run', runId)).toHaveLength(1);
  });

  it('a cancel asked while the last step runs: the run succeeds and its cards say the cancel came too late', async () => {
    const t = await start();
    const { runId, cardId } = await approved();
    await reportAndWait(cardId, runId, 'setup-run', { kind: 'started' });
    await say(OPERATOR, `cancel ${runId}`);
    t.clock.advance(5_000);
    const posts = t.connector.posts().length;
    const card = cardText(await reportAndWait(cardId, runId, 'setup-run', { kind: 'result', result: setupRunResult('setup') }));
    const tooLate = `The cancel ${OPERATOR.name} asked for came too late: the run had finished its last step.`;
    expect(card).toContain('Finished: every step is done');
    expect(card).toContain(tooLate);
    await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
    expect(cardText(cardOf(t.connector.posts().at(-1)))).toContain(tooLate);
    expect((await runStore().get(runId))?.state).toBe('succeeded');
  });

  it('a halted run: Cancel → cancelled, the slot released; a halted rotation is refused; a running status is refused', async () => {
    const t = await start();
    const { runId, cardId } = await halted();
    expect(await runStore().certActive('contoso')).toBe(runId);
    const done = await click(OPERATOR, 'run.cancel', runId, cardId);
    expect(cardText(done.body.value)).toContain(`Cancelled by ${OPERATOR.name}`);
    expect((await runStore().get(runId))?.state).toBe('cancelled');
    expect(await runStore().certActive('contoso')).toBeUndefined();

    // A halted rotation: Roll back or Abandon, not cancel.
    const rotation = await say(APPROVER, 'cert rotate s2s-new.pfx');
    const plan = await t.agent.waitForJob('cert-plan');
    await reportAndWait(rotation.activityId, plan.runId, 'cert-plan', { kind: 'result', result: certPlanResult() });
    await click(SECOND_APPROVER, 'run.approve', plan.runId, rotation.activityId);
    await t.agent.waitForJob('cert-rotate', plan.runId);
    t.clock.advance(5_000);
    await reportAndWait(rotation.activityId, plan.runId, 'cert-rotate', { kind: 'failed', error: { code: 'IMPORT_FAILED', message: 'x' }, steps: [{ id: 'validate', state: 'failed' }] });
    expect((await runStore().get(plan.runId))?.state).toBe('halted');
    const refused = cardText(cardOf(await say(APPROVER, `cancel ${plan.runId}`)));
    expect(refused).toContain('use Roll back or Abandon on its card');
    expect((await runStore().get(plan.runId))?.state).toBe('halted');

    await say(OPERATOR, 'status');
    const status = await t.agent.waitForJob('status');
    const running = cardText(cardOf(await say(OPERATOR, `cancel ${status.runId}`)));
    expect(running).toContain('cannot be stopped from Teams');
    expect((await runStore().get(status.runId))?.state).toBe('running');
  });
});

describe('resume', () => {
  it('typed `resume <run>` of a halted run: attempt 2, and a stale cancel key no longer stops it', async () => {
    const t = await start();
    const p = await halted();
    expect((await runStore().get(p.runId))?.state).toBe('halted');
    // A cancel key left over (asked just as the step failed): the resume deletes it with the state change.
    await t.redis.set(runStore().cancelKey(p.runId), '1');

    const refused = cardText(cardOf(await say(OPERATOR, `resume ${p.runId}`)));
    expect(refused).toContain('SETUP_APPROVERS');
    const reply = cardText(cardOf(await say(APPROVER, `resume ${p.runId}`)));
    expect(reply).toContain('attempt 2');
    await t.connector.waitFor(() => t.agent.jobsOf('setup-run', p.runId).length === 2, 'the attempt 2 job');
    expect(t.agent.jobsOf('setup-run', p.runId)[1]).toMatchObject({ attempt: 2, resumedBy: APPROVER.aadObjectId });
    expect(await t.redis.exists(runStore().cancelKey(p.runId))).toBe(0);
    const run = await runStore().get(p.runId);
    expect(run).toMatchObject({ state: 'approved', attempt: 2 });
    expect(run?.cancelRequestedBy).toBeUndefined();

    const again = cardText(cardOf(await say(APPROVER, `resume ${p.runId}`)));
    expect(again).not.toContain('attempt 3');
    expect(t.agent.jobsOf('setup-run', p.runId)).toHaveLength(2);
    t.clock.advance(5_000);
    const posts = t.connector.posts().length;
    await reportAndWait(p.cardId, p.runId, 'setup-run', { kind: 'result', result: setupRunResult('setup') }, 2);
    await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
    expect((await runStore().get(p.runId))?.state).toBe('succeeded');
    const done = cardText(cardOf(await say(APPROVER, `resume ${p.runId}`)));
    expect(done).toContain('Finished');
  });
});

describe('authorization before anything about the run', () => {
  /** A `run setup` plan awaiting approval whose requester is no longer an operator (nor an approver). */
  async function strangersPlan(t: Harness) {
    return runStore().create({
      runId: newRunId(),
      deployment: 'contoso',
      kind: 'setup',
      state: 'awaiting-approval',
      filter: { kind: 'all' },
      requester: { aadObjectId: STRANGER.aadObjectId, name: STRANGER.name },
      conversation: { channelId: 'msteams', serviceUrl: t.connector.url, conversation: { id: t.conversationId }, bot: { id: '28:setup-bot' } },
      plan: setupPlan('setup'),
    });
  }

  it('a stranger typing resume / cancel learns nothing: not whether the run exists, nor its state', async () => {
    const t = await start();
    const run = await strangersPlan(t);
    for (const text of [`cancel ${run.runId}`, 'cancel unknownrun0001', `resume ${run.runId}`, 'resume unknownrun0001']) {
      const reply = cardText(cardOf(await say(STRANGER, text)));
      expect(reply, text).toContain('SETUP_OPERATORS');
      expect(reply, text).not.toContain('No run');
      expect(reply, text).not.toContain('awaiting');
    }
    expect((await runStore().get(run.runId))?.state).toBe('awaiting-approval');

    // Once the run has ended: still the refusal, not "already cancelled"; an operator who may not
    // cancel this run hears that, not its state.
    await click(APPROVER, 'run.cancel', run.runId, 'card-1');
    expect((await runStore().get(run.runId))?.state).toBe('cancelled');
    const stranger = cardText(cardOf(await say(STRANGER, `cancel ${run.runId}`)));
    expect(stranger).toContain('SETUP_OPERATORS');
    expect(stranger).not.toContain('already');
    const operator = cardText(cardOf(await say(OTHER_OPERATOR, `cancel ${run.runId}`)));
    expect(operator).toContain('may cancel it');
    expect(operator).not.toContain('already');
    expect(cardText(cardOf(await say(APPROVER, `cancel ${run.runId}`)))).toContain(`Run ${run.runId} is already cancelled.`);
  });

  it('a requester who is no longer an operator can neither cancel nor confirm the checklist; a stranger\'s click on an unknown run is refused', async () => {
    const t = await start();
    const run = await strangersPlan(t);
    const cancel = await click(STRANGER, 'run.cancel', run.runId, 'card-1');
    expect(String(cancel.body.value)).toContain('SETUP_OPERATORS');
    const data = { runId: run.runId, 'checklist-hybrid-connector': 'true', 'checklist-exchange-enabled': 'true' };
    const confirm = await clickCard(t, STRANGER, 'setup.confirm-checklist', run.runId, 'card-1', invokeActivity(t, STRANGER, 'setup.confirm-checklist', data, 'card-1'));
    expect(String(confirm.body.value)).toContain('SETUP_OPERATORS');
    const latest = await runStore().get(run.runId);
    expect(latest?.state).toBe('awaiting-approval');
    expect(latest?.checklist).toBeUndefined();
    expect(latest?.cancelRequestedBy).toBeUndefined();

    const unknown = await click(STRANGER, 'run.cancel', 'unknownrun0001', 'card-1');
    expect(String(unknown.body.value)).toContain('SETUP_OPERATORS');
    expect(String(unknown.body.value)).not.toContain('unknown or too old');
  });
});
