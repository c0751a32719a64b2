import { describe, expect, it } from 'vitest';
import { certWatchFailuresKey, storeCertWatchConversation } from '../../bot/cert-watch/cert-watch.ts';
import { timerJobId, type TimerKind } from '../../bot/runs/run-timers.ts';
import { timerQueueName } from '../../jobs/deployment.ts';
import { jobTtlMs } from '../../jobs/job-options.ts';
import type { ReportEvent } from '../../jobs/job-types.ts';
import { APPROVER, OPERATOR, sendMessage, waitForJobState, withQueue, type User, SECOND_APPROVER, twoApproversEnv } from '../support/bot-harness.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { botSession } from '../support/bot-session.ts';
import { certPlanResult, certRotateResult, certStatusResult, rollbackStepsFailedAt, rotationSteps, rotationStepsFailedAt } from '../support/cert-fixtures.ts';

/**
 * The rules around certificate changes, end to end through the bot endpoint with the fake agent:
 * one change at a time, a rollback that is pending until approved (rejected, expired or not started
 * puts the rotation back), one rotation per rotation-due card, and the watch's failed checks.
 */

const { start, harness: t, click, runStore: store, latestCard, reportAndWait } = botSession({ env: twoApproversEnv });

/** `cert rotate` by `from`, its plan job answered with a plan; returns the run and its card. */
async function planned(from: User = OPERATOR) {
  const before = new Set(t().agent.jobsOf('cert-plan').map((j) => j.runId));
  const planning = await sendMessage(t(), from, 'cert rotate');
  const deadline = Date.now() + 10_000;
  let runId: string | undefined;
  while (!runId && Date.now() < deadline) {
    runId = t().agent.jobsOf('cert-plan').map((j) => j.runId).find((id) => !before.has(id));
    if (!runId) await new Promise((r) => setTimeout(r, 20));
  }
  if (!runId) throw new Error('no cert-plan job');
  await reportAndWait(planning.activityId, runId, 'cert-plan', { kind: 'result', result: certPlanResult() });
  return { runId, cardId: planning.activityId };
}

/** A rotation approved by the second approver, halted by a failed verification (register-crm done). */
async function haltedRotation() {
  const p = await planned();
  await click(SECOND_APPROVER, 'run.approve', p.runId, p.cardId);
  await t().agent.waitForJob('cert-rotate', p.runId);
  await reportAndWait(p.cardId, p.runId, 'cert-rotate', { kind: 'result', result: certRotateResult('verification-failed') });
  expect((await store().get(p.runId))?.state).toBe('halted');
  return p;
}

/** The approver approves the rollback: the rotation is superseded and the rollback holds the active change. */
async function approveRollback(rotation: { runId: string }, rb: { rollbackRunId: string; rollbackCardId: string }): Promise<void> {
  await click(APPROVER, 'run.approve', rb.rollbackRunId, rb.rollbackCardId);
  await t().agent.waitForJob('cert-rollback', rb.rollbackRunId);
  expect((await store().get(rotation.runId))?.state).toBe('superseded');
  expect(await store().certActive('contoso')).toBe(rb.rollbackRunId);
}

/** Roll back on the rotation by `from`; returns the rollback run and its card. */
async function askRollback(rotation: { runId: string; cardId: string }, from: User = OPERATOR) {
  const posts = t().connector.posts().length;
  await click(from, 'cert.rollback', rotation.runId, rotation.cardId);
  expect(t().connector.posts().length).toBe(posts + 1);
  const post = t().connector.posts().at(-1)!;
  return { rollbackRunId: String(cardOf(post).actions?.[0]?.data['runId']), rollbackCardId: post.activityId };
}

async function fire(runId: string, timer: TimerKind, attempt = 1): Promise<void> {
  await withQueue(t(), timerQueueName(t().config.deployment), async (q) => {
    const id = timerJobId(runId, timer, attempt);
    const job = await q.getJob(id);
    if (!job) throw new Error(`no timer ${id}`);
    await job.promote();
    await waitForJobState(q, id, 'completed');
  });
}

describe('one certificate change at a time', () => {
  it('refuses to approve a second plan while a rotation is approved or halted, says which run and what to do, and approves it once that run has ended', async () => {
    await start();
    const a = await planned();
    const b = await planned();
    await click(SECOND_APPROVER, 'run.approve', a.runId, a.cardId);
    await t().agent.waitForJob('cert-rotate', a.runId);
    expect(await store().certActive('contoso')).toBe(a.runId);

    const refused = await click(SECOND_APPROVER, 'run.approve', b.runId, b.cardId);
    expect(String(refused.body.value)).toContain(`Another certificate change is in progress: run ${a.runId} (approved); it is running: wait for it to finish`);
    expect((await store().get(b.runId))?.state).toBe('awaiting-approval');
    expect(t().agent.jobsOf('cert-rotate', b.runId)).toHaveLength(0);
    // Refused before anything was scheduled: the start timeout comes with the real approval.
    const startTimeout = () => withQueue(t(), timerQueueName(t().config.deployment), (q) => q.getJob(timerJobId(b.runId, 'start-timeout')));
    expect(await startTimeout()).toBeUndefined();

    // Halted: still in progress; the refusal says Resume or Roll back.
    await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'result', result: certRotateResult('verification-failed') });
    const halted = await click(SECOND_APPROVER, 'run.approve', b.runId, b.cardId);
    expect(String(halted.body.value)).toContain(`run ${a.runId} (halted); it is halted: Resume it, Roll back or Abandon it on its card`);
    expect((await store().get(b.runId))?.state).toBe('awaiting-approval');

    // Resumed and rotated: final, the key is released, and the second plan can be approved.
    await click(APPROVER, 'cert.resume', a.runId, a.cardId);
    await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'started' }, 2);
    t().clock.advance(5_000);
    await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'result', result: certRotateResult('rotated') }, 2);
    expect((await store().get(a.runId))?.state).toBe('succeeded');
    expect(await store().certActive('contoso')).toBeUndefined();
    const approved = await click(SECOND_APPROVER, 'run.approve', b.runId, b.cardId);
    expect(cardText(approved.body.value)).toContain(`Approved by ${SECOND_APPROVER.name}`);
    await t().agent.waitForJob('cert-rotate', b.runId);
    expect(await store().certActive('contoso')).toBe(b.runId);
    expect((await startTimeout())?.data).toMatchObject({ runId: b.runId, timer: 'start-timeout' });
  });
});

describe('abandoning a halted rotation that changed nothing', () => {
  it('an approver gives up a rotation halted before register-crm: the way is free for another; one that changed the registration cannot be abandoned', async () => {
    await start();
    const a = await planned();
    await click(SECOND_APPROVER, 'run.approve', a.runId, a.cardId);
    await t().agent.waitForJob('cert-rotate', a.runId);
    // The import failed on a server: nothing registered in CRM yet.
    const steps = rotationSteps().map((s) => (s.id === 'validate' ? { ...s, state: 'done' as const } : s.id === 'import' ? { ...s, state: 'failed' as const, detail: 'WinRM refused on CRMAPP02' } : s));
    const halted = cardText(await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'failed', error: { code: 'POWERSHELL_FAILED', message: "Step 'import' failed on CRMAPP02" }, steps }));
    expect(halted).toContain('Abandon');
    expect(halted).not.toContain('Roll back |');

    // Only approvers; the operator is refused and nothing changes.
    const refused = await click(OPERATOR, 'cert.abandon', a.runId, a.cardId);
    expect(String(refused.body.value)).toMatch(/approver/i);
    expect((await store().get(a.runId))?.state).toBe('halted');
    expect(await store().certActive('contoso')).toBe(a.runId);

    const done = await click(APPROVER, 'cert.abandon', a.runId, a.cardId);
    expect(cardText(done.body.value)).toContain(`Abandoned by ${APPROVER.name}: CRM still signs with the old certificate.`);
    expect((await store().get(a.runId))?.state).toBe('failed');
    expect(await store().certActive('contoso')).toBeUndefined();
    // A second click (or Resume) on the abandoned rotation changes nothing.
    await click(APPROVER, 'cert.resume', a.runId, a.cardId);
    expect(t().agent.jobsOf('cert-rotate', a.runId)).toHaveLength(1);

    // Another rotation can now be approved.
    const b = await planned();
    await click(SECOND_APPROVER, 'run.approve', b.runId, b.cardId);
    await t().agent.waitForJob('cert-rotate', b.runId);
    // It changed the registration, then verification failed: Abandon is refused (Resume or Roll back).
    await reportAndWait(b.cardId, b.runId, 'cert-rotate', { kind: 'result', result: certRotateResult('verification-failed') });
    const no = await click(APPROVER, 'cert.abandon', b.runId, b.cardId);
    expect(String(no.body.value)).toContain('cannot be abandoned');
    expect((await store().get(b.runId))?.state).toBe('halted');
  });
});

describe('whether a rotation changed CRM\'s registration is sticky across attempts', () => {
  it('attempt 2 failing at validate after attempt 1 registered: Roll back is offered, Abandon is not (and is refused on the server)', async () => {
    await start();
    const a = await planned();
    await click(SECOND_APPROVER, 'run.approve', a.runId, a.cardId);
    await t().agent.waitForJob('cert-rotate', a.runId);
    // Attempt 1 registered the new certificate in CRM, then failed at the Entra key credential.
    const first = await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'failed', error: { code: 'GRAPH_FORBIDDEN', message: 'Graph refused to add the key credential.' }, steps: rotationStepsFailedAt('entra-key-credential') });
    expect(first.actions?.map((x) => x.title)).toEqual(['Resume', 'Roll back']);

    await click(APPROVER, 'cert.resume', a.runId, a.cardId);
    await t().agent.waitForJob('cert-rotate', a.runId);
    t().clock.advance(5_000);
    await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'started' }, 2);
    t().clock.advance(5_000);
    // Attempt 2's first report lists every step pending, then it fails at validate: its latest steps
    // no longer show register-crm done, but CRM still signs with the new certificate.
    await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'progress', progress: { phase: 'step', done: 0, total: 9, steps: rotationSteps('pending') } }, 2);
    t().clock.advance(5_000);
    const halted = await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'failed', error: { code: 'CERT_INVALID', message: 'The PFX could not be opened on CRMAPP02.' }, steps: rotationStepsFailedAt('validate') }, 2);
    const stored = await store().get(a.runId);
    expect(stored).toMatchObject({ state: 'halted', attempt: 2, registrationTouched: true });
    expect(stored?.steps?.find((x) => x.id === 'register-crm')?.state).toBe('pending');
    expect(halted.actions?.map((x) => x.title)).toEqual(['Resume', 'Roll back']);
    expect(cardText(halted)).not.toContain('registration was not changed');

    // A replayed Abandon click: refused, the rotation keeps the deployment's one change.
    const no = await click(APPROVER, 'cert.abandon', a.runId, a.cardId);
    expect(String(no.body.value)).toContain('cannot be abandoned');
    expect(String(no.body.value)).not.toContain('CRM still signs with the old certificate');
    expect((await store().get(a.runId))?.state).toBe('halted');
    expect(await store().certActive('contoso')).toBe(a.runId);
    // Roll back works.
    const rb = await askRollback(a, OPERATOR);
    expect((await store().get(rb.rollbackRunId))).toMatchObject({ state: 'awaiting-approval', rollback: { restoreThumbprint: expect.any(String) as string } });
  });

  it('a register-crm step seen running in a progress report counts, even when a later report of the attempt shows it pending', async () => {
    await start();
    const a = await planned();
    await click(SECOND_APPROVER, 'run.approve', a.runId, a.cardId);
    await t().agent.waitForJob('cert-rotate', a.runId);
    await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'started' });
    t().clock.advance(5_000);
    const running = rotationSteps('pending').map((x, i) => (i < 3 ? { ...x, state: 'done' as const } : x.id === 'register-crm' ? { ...x, state: 'running' as const } : x));
    await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'progress', progress: { phase: 'step', done: 3, total: 9, steps: running } });
    expect((await store().get(a.runId))?.registrationTouched).toBe(true);
    t().clock.advance(5_000);
    // A failed report without steps (the agent lost them): the flag from the progress report stands.
    const halted = await reportAndWait(a.cardId, a.runId, 'cert-rotate', { kind: 'failed', error: { code: 'STEP_FAILED', message: 'The rotation stopped during register-crm.' } });
    expect(halted.actions?.map((x) => x.title)).toEqual(['Resume', 'Roll back']);
  });
});

describe('a rollback that fails before changing anything', () => {
  it('its validate-old failed: the rotation is halted again with the active change, its card offers Resume and Roll back again, and both work', async () => {
    await start();
    const rotation = await haltedRotation();
    const rb = await askRollback(rotation, OPERATOR);
    await approveRollback(rotation, rb);

    const failed = cardText(await reportAndWait(rb.rollbackCardId, rb.rollbackRunId, 'cert-rollback', {
      kind: 'failed',
      error: { code: 'GRAPH_REQUEST_FAILED', message: 'Graph could not be read: the old key credential cannot be checked.', hint: 'Check the agent reaches graph.microsoft.com, then Roll back again.' },
      steps: rollbackStepsFailedAt('validate-old'),
    }));
    expect(failed).toContain('The rollback failed.');
    expect(failed).toContain('Nothing was changed by this rollback');
    expect(failed).toContain(`The rotation (run ${rotation.runId}) is halted again`);
    expect(failed).not.toContain('`@setup cert rotate` again');
    expect((await store().get(rb.rollbackRunId))?.state).toBe('failed');
    const back = await store().get(rotation.runId);
    expect(back).toMatchObject({ state: 'halted', failedRollbackRunId: rb.rollbackRunId, registrationTouched: true });
    expect(back?.rollbackRunId).toBeUndefined();
    expect(back?.supersededBy).toBeUndefined();
    expect(await store().certActive('contoso')).toBe(rotation.runId);
    // The rotation registered the new certificate: Resume and Roll back again, no Abandon.
    await t().connector.waitFor(() => (latestCard(rotation.cardId).actions ?? []).map((x) => x.title).join() === 'Resume,Roll back', 'the rotation card with Resume and Roll back');
    expect(cardText(latestCard(rotation.cardId))).toContain(`The rollback (run ${rb.rollbackRunId}) failed before changing CRM's registration`);

    // Roll back again: a new rollback is pending (the note of the failed one goes), then rejected.
    const again = await askRollback(rotation, OPERATOR);
    expect((await store().get(again.rollbackRunId))?.state).toBe('awaiting-approval');
    expect((await store().get(rotation.runId))?.failedRollbackRunId).toBeUndefined();
    await click(OPERATOR, 'run.reject', again.rollbackRunId, again.rollbackCardId);
    // Resume works too.
    await click(APPROVER, 'cert.resume', rotation.runId, rotation.cardId);
    expect(await store().get(rotation.runId)).toMatchObject({ state: 'approved', attempt: 2 });
    await t().agent.waitForJob('cert-rotate', rotation.runId);
    expect(t().agent.jobsOf('cert-rotate', rotation.runId)).toHaveLength(2);
  });

  it('a rollback whose register-crm ran (seen in progress) and then failed leaves the rotation superseded and ends the change', async () => {
    await start();
    const rotation = await haltedRotation();
    const rb = await askRollback(rotation, OPERATOR);
    await click(APPROVER, 'run.approve', rb.rollbackRunId, rb.rollbackCardId);
    await t().agent.waitForJob('cert-rollback', rb.rollbackRunId);
    await reportAndWait(rb.rollbackCardId, rb.rollbackRunId, 'cert-rollback', { kind: 'started' });
    t().clock.advance(5_000);
    const steps = rollbackStepsFailedAt('register-crm').map((x) => (x.id === 'register-crm' ? { ...x, state: 'running' as const } : x));
    await reportAndWait(rb.rollbackCardId, rb.rollbackRunId, 'cert-rollback', { kind: 'progress', progress: { phase: 'step', done: 1, total: 5, steps } });
    t().clock.advance(5_000);
    const failed = cardText(await reportAndWait(rb.rollbackCardId, rb.rollbackRunId, 'cert-rollback', { kind: 'failed', error: { code: 'POWERSHELL_TIMEOUT', message: 'Set-CrmCertificate did not answer in time.' } }));
    expect(failed).toContain('`@setup cert rotate` again');
    expect(failed).not.toContain('Nothing was changed by this rollback');
    expect((await store().get(rotation.runId))?.state).toBe('superseded');
    expect(await store().certActive('contoso')).toBeUndefined();
  });
});

describe('a rollback is pending until it is approved', () => {
  it('rejected: the rotation is plainly halted again (Resume, Roll back), its card updated, and Roll back works again', async () => {
    await start();
    const rotation = await haltedRotation();
    const first = await askRollback(rotation, OPERATOR);
    expect((await store().get(rotation.runId))?.rollbackRunId).toBe(first.rollbackRunId);
    const rejected = await click(APPROVER, 'run.reject', first.rollbackRunId, first.rollbackCardId);
    expect(cardText(rejected.body.value)).toContain(`Rejected by ${APPROVER.name}`);
    const after = await store().get(rotation.runId);
    expect(after?.state).toBe('halted');
    expect(after?.rollbackRunId).toBeUndefined();
    expect(latestCard(rotation.cardId).actions?.map((a) => a.title)).toEqual(['Resume', 'Roll back']);
    expect(cardText(latestCard(rotation.cardId))).not.toContain('waiting for approval');

    // Asked again, then withdrawn by its requester: cleared again.
    const second = await askRollback(rotation, OPERATOR);
    expect(second.rollbackRunId).not.toBe(first.rollbackRunId);
    await click(OPERATOR, 'run.reject', second.rollbackRunId, second.rollbackCardId);
    expect((await store().get(rotation.runId))?.rollbackRunId).toBeUndefined();
    expect(t().agent.jobsOf('cert-rollback')).toHaveLength(0);
    expect(await store().certActive('contoso')).toBe(rotation.runId);
  });

  it('expired: the approval-expiry timer clears the pending rollback and updates the rotation\'s card', async () => {
    await start();
    const rotation = await haltedRotation();
    const rb = await askRollback(rotation);
    t().clock.advance(t().config.approvalTtlMinutes * 60_000 + 1_000);
    await fire(rb.rollbackRunId, 'approval-expiry');
    expect((await store().get(rb.rollbackRunId))?.state).toBe('expired');
    expect(await store().get(rotation.runId)).toMatchObject({ state: 'halted' });
    expect((await store().get(rotation.runId))?.rollbackRunId).toBeUndefined();
    await t().connector.waitFor(() => (latestCard(rotation.cardId).actions ?? []).length === 2, 'the rotation card with Resume and Roll back');
  });

  it('approved but no agent started it: the rollback fails, the rotation is halted again with Roll back (as the hint says) and holds the active change', async () => {
    await start();
    const rotation = await haltedRotation();
    const rb = await askRollback(rotation, OPERATOR);
    await approveRollback(rotation, rb);

    t().clock.advance(jobTtlMs['cert-rollback'] + 3 * 60_000);
    await fire(rb.rollbackRunId, 'start-timeout');
    const failed = cardText(latestCard(rb.rollbackCardId));
    expect(failed).toContain('No on-premises agent started the rollback');
    expect(failed).toContain(`click Roll back on the rotation (run ${rotation.runId}) again`);
    expect((await store().get(rb.rollbackRunId))?.state).toBe('failed');
    const back = await store().get(rotation.runId);
    expect(back?.state).toBe('halted');
    expect(back?.rollbackRunId).toBeUndefined();
    expect(await store().certActive('contoso')).toBe(rotation.runId);
    await t().connector.waitFor(() => (latestCard(rotation.cardId).actions ?? []).map((a) => a.title).join() === 'Resume,Roll back', 'the rotation card with Resume and Roll back');
    // What the hint says works.
    const again = await askRollback(rotation, OPERATOR);
    expect((await store().get(again.rollbackRunId))?.state).toBe('awaiting-approval');
  });
});

describe('Start rotation on a rotation-due card', () => {
  it('a double click starts one rotation; the second click says which run was started', async () => {
    await start();
    const [one, two] = await Promise.all([
      click(OPERATOR, 'cert.start-rotation', 'watchrun01', 'card-1'),
      click(OPERATOR, 'cert.start-rotation', 'watchrun01', 'card-1'),
    ]);
    const answers = [String(one.body.value), String(two.body.value)];
    const job = await t().agent.waitForJob('cert-plan');
    expect(answers.filter((a) => a.includes('Rotation requested'))).toHaveLength(1);
    expect(answers.filter((a) => a.includes(`A rotation was already started from this card: run ${job.runId}`))).toHaveLength(1);
    const retry = await click(APPROVER, 'cert.start-rotation', 'watchrun01', 'card-1');
    expect(String(retry.body.value)).toContain(`run ${job.runId}`);
    expect(t().agent.jobsOf('cert-plan')).toHaveLength(1);
    expect(await t().redis.keys(`${t().prefix}:run:*`)).toHaveLength(1);
    // Another card (another watch run) may start its own.
    await click(OPERATOR, 'cert.start-rotation', 'watchrun02', 'card-2');
    await t().connector.waitFor(() => t().agent.jobsOf('cert-plan').length === 2, 'a second plan job');
  });
});

describe('the certificate watch\'s failed checks', () => {
  async function watchCheck(event: ReportEvent): Promise<string> {
    const before = new Set(t().agent.jobsOf('cert-status').map((j) => j.runId));
    const id = `watch-${Math.random().toString(36).slice(2)}`;
    await withQueue(t(), timerQueueName(t().config.deployment), async (q) => {
      await q.add('cert-watch', {}, { jobId: id });
      await waitForJobState(q, id, 'completed');
    });
    const deadline = Date.now() + 10_000;
    let runId: string | undefined;
    while (!runId && Date.now() < deadline) {
      runId = t().agent.jobsOf('cert-status').map((j) => j.runId).find((r) => !before.has(r));
      if (!runId) await new Promise((r) => setTimeout(r, 20));
    }
    if (!runId) throw new Error('no watch check');
    await t().agent.report(runId, 'cert-status', event);
    const end = Date.now() + 10_000;
    // The relay marks the report done (finalPostedSeq) after the watch has counted and posted.
    while (((await store().get(runId))?.finalPostedSeq ?? -1) < 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(['succeeded', 'failed']).toContain((await store().get(runId))?.state);
    return runId;
  }

  const failed: ReportEvent = { kind: 'failed', error: { code: 'POWERSHELL_FAILED', message: 'Get-CrmCertificate failed: access denied.', hint: 'Run the agent as a CRM deployment administrator.' } };
  const cannotCheck = (): string[] => t().connector.posts().map((p) => cardText(cardOf(p))).filter((x) => x.includes('cannot check the S2S certificate'));

  it('says after 3 failed checks in a row that it cannot check (once a day), never "not registered" for an unreadable registration, and a good check resets the count', async () => {
    await start();
    const reference = { channelId: 'msteams', serviceUrl: t().connector.url, conversation: { id: t().conversationId }, bot: { id: '28:setup-bot' } };
    await storeCertWatchConversation({ redis: t().redis, config: t().config }, reference);
    const key = certWatchFailuresKey(t().prefix, 'contoso');

    await watchCheck(failed);
    // An unreadable registration: no "not registered" card, and it counts as a failed check.
    await watchCheck({ kind: 'result', result: certStatusResult({ registrationRead: false, registered: null, daysLeft: null, findings: [{ message: 'Get-CrmCertificate: the CRM PowerShell snap-in is not loaded.', fix: 'Install the CRM PowerShell snap-in on the agent host.' }] }) });
    expect(t().connector.posts().map((p) => cardText(cardOf(p))).some((x) => x.includes('No S2S certificate is registered'))).toBe(false);
    expect(cannotCheck()).toEqual([]);
    expect(await t().redis.get(key)).toBe('2');

    await watchCheck(failed);
    await t().connector.waitFor(() => cannotCheck().length === 1, 'the cannot-check card');
    const text = cannotCheck()[0] ?? '';
    expect(text).toContain('The last 3 checks in a row failed');
    expect(text).toContain('Get-CrmCertificate failed: access denied.');
    expect(text).toContain('Run the agent as a CRM deployment administrator.');
    expect(text).toContain('@setup cert status');
    expect(text).toContain('ASYNC_SERVERS');

    // A fourth failure the same day: no second card.
    await watchCheck(failed);
    expect(await t().redis.get(key)).toBe('4');
    expect(cannotCheck()).toHaveLength(1);

    // A check that reads the certificate resets the count.
    await watchCheck({ kind: 'result', result: certStatusResult({ daysLeft: 200 }) });
    expect(await t().redis.get(key)).toBeNull();
  });
});
