import { describe, expect, it } from 'vitest';
import { reportQueueName, timerQueueName } from '../../jobs/deployment.ts';
import { certStepTitles, rotationStepIds } from '../../jobs/cert-types.ts';
import { certWatchConversationKey } from '../../bot/cert-watch/cert-watch.ts';
import { APPROVER, OPERATOR, OTHER_OPERATOR, STRANGER, withQueue, type User, SECOND_APPROVER, twoApproversEnv } from '../support/bot-harness.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { botSession } from '../support/bot-session.ts';
import {
  NEW_THUMBPRINT,
  OLD_THUMBPRINT,
  certPlanResult,
  certRollbackResult,
  certRotateResult,
  certStatusResult,
  certSummary,
} from '../support/cert-fixtures.ts';

/** Two approvers: the two-person rule needs an approver other than the requester. */
const { start, harness, say, click, runStore, latestCard, reportAndWait, jobIds } = botSession({ env: twoApproversEnv });

/** `cert rotate` by `from`, the plan job answered with `plan`; returns the run and its card id. */
async function planned(from: User, command = 'cert rotate s2s-new.pfx', plan = certPlanResult()) {
  const t = harness();
  const planning = await say(from, command);
  expect(cardText(cardOf(planning))).toContain('Planning');
  const job = await t.agent.waitForJob('cert-plan');
  const card = await reportAndWait(planning.activityId, job.runId, 'cert-plan', { kind: 'result', result: plan });
  return { runId: job.runId, cardId: planning.activityId, card, job };
}

/** A planned rotation approved by a second approver: the run is approved and the cert-rotate job queued. */
async function approvedRotation() {
  const t = harness();
  const p = await planned(APPROVER);
  const approved = await click(SECOND_APPROVER, 'run.approve', p.runId, p.cardId);
  expect(cardText(approved.body.value)).toContain(`Approved by ${SECOND_APPROVER.name}`);
  const job = await t.agent.waitForJob('cert-rotate', p.runId);
  return { ...p, rotateJob: job };
}

describe('cert status', () => {
  it('shows the registered certificate, each server, the Entra key credentials, the settings and each finding with its fix', async () => {
    const t = await start();
    const checking = await say(OPERATOR, 'cert status');
    expect(cardText(cardOf(checking))).toContain('Checking');
    const job = await t.agent.waitForJob('cert-status');
    expect(job).toMatchObject({ type: 'cert-status', requestedBy: OPERATOR.aadObjectId });
    const text = cardText(await reportAndWait(checking.activityId, job.runId, 'cert-status', { kind: 'result', result: certStatusResult() }));
    expect(text).toContain(OLD_THUMBPRINT);
    expect(text).toContain('CN=crm-s2s.contoso.com');
    expect(text).toContain('21 days left');
    expect(text).toContain('CRMAPP02');
    expect(text).toContain('NOT readable by the service account');
    expect(text).toContain('(the registered one)');
    expect(text).toContain('https://accounts.accesscontrol.windows.net/metadata/json/1');
    expect(text).toContain('They do not agree');
    expect(text).toContain('Fix: Grant CONTOSO\\crmasync Read on the private key');
    expect((await runStore().get(job.runId))?.state).toBe('succeeded');
  });

  it('shows the error and its hint when the agent fails the check; a stranger is refused', async () => {
    const t = await start();
    const refused = await say(STRANGER, 'cert status');
    expect(cardText(cardOf(refused))).toContain('SETUP_OPERATORS');
    const checking = await say(OPERATOR, 'cert status');
    const job = await t.agent.waitForJob('cert-status');
    const text = cardText(await reportAndWait(checking.activityId, job.runId, 'cert-status', {
      kind: 'failed',
      error: { code: 'GRAPH_FORBIDDEN', message: 'Graph refused to read the service principal.', hint: 'Grant and admin-consent Application.ReadWrite.All.' },
    }));
    expect(text).toContain('Graph refused to read the service principal.');
    expect(text).toContain('What to do: Grant and admin-consent Application.ReadWrite.All.');
    expect((await runStore().get(job.runId))?.state).toBe('failed');
    expect(await jobIds()).toEqual([`${job.runId}-cert-status`]);
  });
});

describe('cert rotate', () => {
  it('refuses a bad file name with the valid form and where the file must be, and queues nothing', async () => {
    const t = await start();
    const reply = await say(OPERATOR, 'cert rotate ../x.pfx');
    const text = cardText(cardOf(reply));
    expect(text).toContain('is not a PFX file name');
    expect(text).toContain('plain file name');
    expect(text).toContain('CERT_DIR');
    expect(await jobIds()).toEqual([]);
    expect(await t.redis.keys(`${t.prefix}:run:*`)).toEqual([]);
    const forms = await say(OPERATOR, 'cert');
    expect(cardText(cardOf(forms))).toContain('cert rotate [file.pfx]');
  });

  it('plan → the requester cannot approve their own rotation → a second approver approves → steps → rotated with results', async () => {
    const t = await start();
    const { runId, cardId, card, job } = await planned(APPROVER);
    expect(job).toMatchObject({ type: 'cert-plan', file: 's2s-new.pfx', requestedBy: APPROVER.aadObjectId });
    const plan = cardText(card);
    expect(plan).toContain(OLD_THUMBPRINT);
    expect(plan).toContain(NEW_THUMBPRINT);
    expect(plan).toContain('CRMAPP01, CRMAPP02');
    expect(plan).toContain('CONTOSO\\crmasync');
    expect(plan).toContain('would import on CRMAPP01 and CRMAPP02');
    expect(plan).toContain(`Needs an approver other than ${APPROVER.name}`);
    expect(card.actions?.map((a) => [a.title, a.verb, a.data])).toEqual([
      ['Approve', 'run.approve', { runId }],
      ['Reject', 'run.reject', { runId }],
    ]);

    // Two-person rule: the requester, although an approver, is refused; nothing is queued.
    const own = await click(APPROVER, 'run.approve', runId, cardId);
    expect(own.body.value).toBe('You asked for this rotation; another approver must approve it.');
    // An operator who is not an approver is refused too.
    const operator = await click(OPERATOR, 'run.approve', runId, cardId);
    expect(String(operator.body.value)).toContain('SETUP_APPROVERS');
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');
    expect(await jobIds()).toEqual([`${runId}-cert-plan`]);

    const approved = await click(SECOND_APPROVER, 'run.approve', runId, cardId);
    expect(cardText(approved.body.value)).toContain(`Approved by ${SECOND_APPROVER.name}`);
    const rotate = await t.agent.waitForJob('cert-rotate', runId);
    expect(rotate).toEqual({
      type: 'cert-rotate',
      runId,
      deployment: 'contoso',
      requestedBy: APPROVER.aadObjectId,
      file: 's2s-new.pfx',
      newThumbprint: NEW_THUMBPRINT,
      oldThumbprint: OLD_THUMBPRINT,
      approvedBy: SECOND_APPROVER.aadObjectId,
      attempt: 1,
    });
    expect(await jobIds()).toEqual([`${runId}-cert-plan`, `${runId}-cert-rotate`]);

    await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'started' });
    expect((await runStore().get(runId))?.state).toBe('running');
    t.clock.advance(5_000);
    const steps = rotationStepIds.map((id, i) => ({ id, state: i < 2 ? ('done' as const) : i === 2 ? ('running' as const) : ('pending' as const), ...(id === 'import' ? { detail: 'imported on CRMAPP01, already on CRMAPP02' } : {}) }));
    const progress = cardText(await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'progress', progress: { phase: 'step', done: 2, total: 9, steps } }));
    expect(progress).toContain(`✔ ${certStepTitles.import}: done. imported on CRMAPP01, already on CRMAPP02`);
    expect(progress).toContain(`▶ ${certStepTitles['grant-key-access']}: running`);
    expect(progress).toContain(`○ ${certStepTitles['retire-old']}: pending`);

    const posts = t.connector.posts().length;
    t.clock.advance(5_000);
    const final = cardText(await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'result', result: certRotateResult('rotated') }));
    expect(final).toContain(`Rotated: ${NEW_THUMBPRINT} is the S2S certificate`);
    await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
    const results = cardText(cardOf(t.connector.posts().at(-1)));
    expect(results).toContain('Mailboxes tested');
    expect(results).toContain('removed from Entra ID');
    expect((await runStore().get(runId))?.state).toBe('succeeded');
  });

  it('the requester may withdraw the plan; another operator may not reject it', async () => {
    await start();
    const { runId, cardId } = await planned(OPERATOR);
    const other = await click(OTHER_OPERATOR, 'run.reject', runId, cardId);
    expect(String(other.body.value)).toContain('Only the person who asked for this or an approver');
    expect((await runStore().get(runId))?.state).toBe('awaiting-approval');
    const withdrawn = await click(OPERATOR, 'run.reject', runId, cardId);
    expect(cardText(withdrawn.body.value)).toContain(`Withdrawn by ${OPERATOR.name}`);
    expect((await runStore().get(runId))?.state).toBe('rejected');
    expect(await jobIds()).toEqual([`${runId}-cert-plan`]);
  });

  it('a blocked plan ends as "cannot rotate" with each problem and its fix, and no buttons', async () => {
    const t = await start();
    const weak = certSummary({
      thumbprint: NEW_THUMBPRINT,
      keySize: 1024,
      problems: [{ code: 'KEY_TOO_SMALL', severity: 'error', message: 'The key has 1024 bits; Entra ID needs at least 2048.', fix: 'Issue a new certificate with a 2048-bit RSA key.' }],
    });
    const { runId, card } = await planned(OPERATOR, 'cert rotate', certPlanResult({ next: weak, blocked: true }));
    const text = cardText(card);
    expect(text).toContain('Cannot rotate');
    expect(text).toContain('The key has 1024 bits; Entra ID needs at least 2048.');
    expect(text).toContain('What to do: Issue a new certificate with a 2048-bit RSA key.');
    expect(text).toContain('Nothing was changed');
    expect(card.actions ?? []).toEqual([]);
    expect((await runStore().get(runId))?.state).toBe('plan-failed');
    expect(await jobIds()).toEqual([`${runId}-cert-plan`]);
    expect(t.agent.jobsOf('cert-plan', runId)[0]).not.toHaveProperty('file');
  });

  it('a failed step halts the run: a non-approver cannot resume, a double-clicked Resume starts attempt 2 once, and its reports are shown', async () => {
    const t = await start();
    const { runId, cardId } = await approvedRotation();
    await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'started' });
    t.clock.advance(5_000);
    const failedSteps = rotationStepIds.map((id, i) => ({ id, state: i < 3 ? ('done' as const) : i === 3 ? ('failed' as const) : ('pending' as const) }));
    const halted = await reportAndWait(cardId, runId, 'cert-rotate', {
      kind: 'failed',
      error: { code: 'POWERSHELL_FAILED', message: "Step 'Register as S2S token issuer' failed: access denied.", hint: 'Run the agent as a CRM deployment administrator.' },
      steps: failedSteps,
    });
    const text = cardText(halted);
    expect(text).toContain('Halted: a step failed.');
    expect(text).toContain(`Stopped at: ${certStepTitles['register-crm']}`);
    expect(text).toContain('What to do: Run the agent as a CRM deployment administrator.');
    expect(text).toContain(`✖ ${certStepTitles['register-crm']}: FAILED`);
    // Stopped at register-crm: Set-CrmCertificate may have taken effect (a timeout), so the rotation
    // touched CRM's registration: Resume or Roll back (the rollback's validate-old checks what CRM
    // signs with now), never Abandon.
    expect(halted.actions?.map((a) => [a.title, a.verb, a.data])).toEqual([['Resume', 'cert.resume', { runId }], ['Roll back', 'cert.rollback', { runId }]]);
    expect(text).not.toContain('registration was not changed');
    expect((await runStore().get(runId))).toMatchObject({ state: 'halted', registrationTouched: true });
    // A replayed Abandon click is refused on the server too.
    const abandon = await click(APPROVER, 'cert.abandon', runId, cardId);
    expect(String(abandon.body.value)).toContain('cannot be abandoned');
    expect((await runStore().get(runId))?.state).toBe('halted');
    expect(await runStore().certActive('contoso')).toBe(runId);

    // An operator may not resume (approvers only); nothing changes.
    const refused = await click(OPERATOR, 'cert.resume', runId, cardId);
    expect(String(refused.body.value)).toContain('SETUP_APPROVERS');
    expect((await runStore().get(runId))?.attempt).toBe(1);

    // A double click: both clicks arrive together; one attempt 2, one job.
    const [first, second] = await Promise.all([click(APPROVER, 'cert.resume', runId, cardId), click(APPROVER, 'cert.resume', runId, cardId)]);
    expect(`${cardText(first.body.value)} ${cardText(second.body.value)}`).toContain(`Resumed by ${APPROVER.name}`);
    const resumed = await runStore().get(runId);
    expect(resumed?.state).toBe('approved');
    expect(resumed?.attempt).toBe(2);
    // Attempt 1's error is gone (a later halt does not show it).
    expect(resumed?.error).toBeUndefined();
    expect(resumed?.result).toBeUndefined();
    const job2 = await t.agent.waitForJob('cert-rotate', runId);
    expect(t.agent.jobsOf('cert-rotate', runId)).toHaveLength(2);
    expect(await jobIds()).toEqual([`${runId}-cert-plan`, `${runId}-cert-rotate`, `${runId}-cert-rotate-a2`]);
    const attempt2 = t.agent.jobsOf('cert-rotate', runId).find((j) => j.type === 'cert-rotate' && j.attempt === 2);
    // The plan's approver stays the approver; who resumed travels as resumedBy.
    expect(attempt2).toMatchObject({ newThumbprint: NEW_THUMBPRINT, oldThumbprint: OLD_THUMBPRINT, approvedBy: SECOND_APPROVER.aadObjectId, resumedBy: APPROVER.aadObjectId, attempt: 2 });
    expect(job2.runId).toBe(runId);
    // The start timeout of attempt 2 is its own timer job (the first attempt's id would be a no-op).
    const timerIds = await withQueue(t, timerQueueName(t.config.deployment), async (q) => (await q.getJobs(['delayed', 'waiting'])).map((j) => j.id));
    expect(timerIds).toContain(`${runId}-start-timeout-a2`);
    expect(timerIds).toContain(`${runId}-start-timeout`);

    // Attempt 2's reports: its counter starts again at 1, its seqs are above attempt 1's, so they are shown.
    t.clock.advance(5_000);
    const started = cardText(await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'started' }, 2));
    expect(started).toContain(`Resumed by ${APPROVER.name} (attempt 2)`);
    expect(started).toContain(`Approved by | ${SECOND_APPROVER.name}`);
    expect(started).toContain(`Resumed by | ${APPROVER.name}`);
    expect((await runStore().get(runId))?.state).toBe('running');
    t.clock.advance(5_000);
    // As the agent reports steps its journal holds from attempt 1: done, "(earlier attempt)".
    const skipped = rotationStepIds.map((id, i) =>
      i < 3 ? { id, state: 'done' as const, detail: 'imported on CRMAPP01, CRMAPP02 (earlier attempt)' } : { id, state: i === 3 ? ('running' as const) : ('pending' as const) },
    );
    const progress = cardText(await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'progress', progress: { phase: 'step', done: 3, total: 9, steps: skipped } }, 2));
    expect(progress).toContain(`✔ ${certStepTitles.import}: done. imported on CRMAPP01, CRMAPP02 (earlier attempt)`);
    expect(progress).toContain(`▶ ${certStepTitles['register-crm']}: running`);
    // A late report of attempt 1 (a redelivered failure) changes nothing.
    const updates = t.connector.updates(cardId).length;
    const late = await t.agent.report(runId, 'cert-rotate', { kind: 'failed', error: { code: 'POWERSHELL_FAILED', message: 'late' }, steps: failedSteps });
    await withQueue(t, reportQueueName(t.config.deployment), async (q) => {
      const deadline = Date.now() + 10_000;
      while ((await q.getJobState(late)) !== 'completed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await q.getJobState(late)).toBe('completed');
    });
    expect((await runStore().get(runId))?.state).toBe('running');
    expect(t.connector.updates(cardId).length).toBe(updates);

    t.clock.advance(5_000);
    const final = cardText(await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'result', result: certRotateResult('rotated') }, 2));
    expect(final).toContain('Rotated:');
    expect((await runStore().get(runId))?.state).toBe('succeeded');
  });

  it('verification failed → Roll back → the rollback needs an approver other than who asked for it → cert-rollback job → rolled back', async () => {
    const t = await start();
    const { runId, cardId } = await approvedRotation();
    await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'started' });
    t.clock.advance(5_000);
    const halted = await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'result', result: certRotateResult('verification-failed') });
    const text = cardText(halted);
    expect(text).toContain('did not pass Test & Enable');
    expect(text).toContain('Exchange Online rejected the S2S token (3)');
    expect(text).toContain('What to do: Check the key credential of the CRM service principal in Entra ID.');
    expect(halted.actions?.map((a) => a.title)).toEqual(['Resume', 'Roll back']);
    expect((await runStore().get(runId))?.state).toBe('halted');

    // A stranger may not ask for a rollback.
    const stranger = await click(STRANGER, 'cert.rollback', runId, cardId);
    expect(String(stranger.body.value)).toContain('SETUP_OPERATORS');
    expect((await runStore().get(runId))?.state).toBe('halted');

    const posts = t.connector.posts().length;
    const requested = await click(SECOND_APPROVER, 'cert.rollback', runId, cardId);
    // Requested, not approved: the rotation stays halted with the rollback pending, without buttons.
    expect(cardText(requested.body.value)).toContain(`Rollback requested by ${SECOND_APPROVER.name}: waiting for approval`);
    expect(cardText(latestCard(cardId))).toContain('waiting for approval');
    expect(latestCard(cardId).actions ?? []).toEqual([]);
    expect(t.connector.posts().length).toBe(posts + 1);
    const rollbackPost = t.connector.posts().at(-1)!;
    const rollbackCard = cardOf(rollbackPost);
    const rollbackRunId = String(rollbackCard.actions?.[0]?.data['runId']);
    expect(await runStore().get(runId)).toMatchObject({ state: 'halted', rollbackRunId, rollbackRequestedBy: { aadObjectId: SECOND_APPROVER.aadObjectId } });
    expect(cardText(rollbackCard)).toContain(`Needs an approver other than ${SECOND_APPROVER.name}`);
    expect(cardText(rollbackCard)).toContain(OLD_THUMBPRINT);
    expect(cardText(rollbackCard)).toContain(certStepTitles['validate-old']);
    expect(cardText(rollbackCard)).toContain(certStepTitles['retire-failed']);
    const rollbackRun = await runStore().get(rollbackRunId);
    expect(rollbackRun).toMatchObject({
      kind: 'cert-rollback',
      state: 'awaiting-approval',
      parentRunId: runId,
      requester: { aadObjectId: SECOND_APPROVER.aadObjectId },
      rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT },
      cardActivityId: rollbackPost.activityId,
    });
    // A second Roll back and a Resume are refused while the rollback waits; nothing is created or queued.
    const again = await click(APPROVER, 'cert.rollback', runId, cardId);
    expect(String(again.body.value)).toContain(`A rollback of this rotation was already requested by ${SECOND_APPROVER.name} (run ${rollbackRunId})`);
    const resume = await click(APPROVER, 'cert.resume', runId, cardId);
    expect(String(resume.body.value)).toContain('waiting for approval');
    expect(t.connector.posts().length).toBe(posts + 1);
    expect(await runStore().get(runId)).toMatchObject({ state: 'halted', attempt: 1 });
    expect(t.agent.jobsOf('cert-rotate', runId)).toHaveLength(1);
    expect(await runStore().certActive('contoso')).toBe(runId);

    // The rollback's requester may not approve it; the other approver does.
    const own = await click(SECOND_APPROVER, 'run.approve', rollbackRunId, rollbackPost.activityId);
    expect(own.body.value).toBe('You asked for this rollback; another approver must approve it.');
    expect(t.agent.jobsOf('cert-rollback')).toHaveLength(0);
    const approved = await click(APPROVER, 'run.approve', rollbackRunId, rollbackPost.activityId);
    expect(cardText(approved.body.value)).toContain(`Approved by ${APPROVER.name}`);
    // Approved: now the rotation is superseded, its card says so, and the rollback is the active change.
    expect((await runStore().get(runId))?.state).toBe('superseded');
    expect(cardText(latestCard(cardId))).toContain(`Rollback requested by ${SECOND_APPROVER.name} and approved (run ${rollbackRunId})`);
    expect(await runStore().certActive('contoso')).toBe(rollbackRunId);
    const job = await t.agent.waitForJob('cert-rollback', rollbackRunId);
    expect(job).toEqual({
      type: 'cert-rollback',
      runId: rollbackRunId,
      deployment: 'contoso',
      requestedBy: SECOND_APPROVER.aadObjectId,
      rotationRunId: runId,
      restoreThumbprint: OLD_THUMBPRINT,
      failedThumbprint: NEW_THUMBPRINT,
      approvedBy: APPROVER.aadObjectId,
      attempt: 1,
    });

    await reportAndWait(rollbackPost.activityId, rollbackRunId, 'cert-rollback', { kind: 'started' });
    t.clock.advance(5_000);
    const before = t.connector.posts().length;
    const done = cardText(await reportAndWait(rollbackPost.activityId, rollbackRunId, 'cert-rollback', { kind: 'result', result: certRollbackResult() }));
    expect(done).toContain(`Rolled back: ${OLD_THUMBPRINT} is the S2S certificate again`);
    await t.connector.waitFor(() => t.connector.posts().length === before + 1, 'the rollback results card');
    expect(cardText(cardOf(t.connector.posts().at(-1)))).toContain('Restored certificate');
    expect((await runStore().get(rollbackRunId))?.state).toBe('succeeded');
    expect((await runStore().get(runId))?.state).toBe('superseded');
    // Final: the next certificate change may be approved.
    expect(await runStore().certActive('contoso')).toBeUndefined();
  });

  it('a rollback that failed after changing CRM\'s registration says what to do next; the rotation stays superseded', async () => {
    const t = await start();
    const { runId, cardId } = await approvedRotation();
    await reportAndWait(cardId, runId, 'cert-rotate', { kind: 'result', result: certRotateResult('verification-failed') });
    await click(OPERATOR, 'cert.rollback', runId, cardId);
    const rollbackPost = t.connector.posts().at(-1)!;
    const rollbackRunId = String(cardOf(rollbackPost).actions?.[0]?.data['runId']);
    await click(APPROVER, 'run.approve', rollbackRunId, rollbackPost.activityId);
    await t.agent.waitForJob('cert-rollback', rollbackRunId);
    const failed = cardText(await reportAndWait(rollbackPost.activityId, rollbackRunId, 'cert-rollback', {
      kind: 'failed',
      error: { code: 'POWERSHELL_FAILED', message: "Step 'Restart the services' failed on CRMAPP02: timed out.", hint: 'Restart the CRM services on CRMAPP02 by hand.' },
      steps: [{ id: 'validate-old', state: 'done' }, { id: 'register-crm', state: 'done' }, { id: 'restart-services', state: 'failed' }, { id: 'verify', state: 'pending' }, { id: 'retire-failed', state: 'pending' }],
    }));
    expect(failed).toContain('The rollback failed.');
    expect(failed).toContain('What to do: Restart the CRM services on CRMAPP02 by hand.');
    expect(failed).toContain('`@setup cert rotate` again');
    expect((await runStore().get(rollbackRunId))?.state).toBe('failed');
    // It changed the registration: the rotation stays superseded, and the deployment's change is over.
    expect((await runStore().get(runId))?.state).toBe('superseded');
    expect(await runStore().certActive('contoso')).toBeUndefined();
  });

  it('Start rotation on a rotation-due card plans a rotation as if the clicker typed `cert rotate`; a stranger is refused', async () => {
    const t = await start();
    const refused = await click(STRANGER, 'cert.start-rotation', 'watchrun01', 'card-1');
    expect(String(refused.body.value)).toContain('SETUP_OPERATORS');
    expect(await jobIds()).toEqual([]);
    const posts = t.connector.posts().length;
    await click(OPERATOR, 'cert.start-rotation', 'watchrun01', 'card-1');
    const job = await t.agent.waitForJob('cert-plan');
    expect(job).toMatchObject({ type: 'cert-plan', requestedBy: OPERATOR.aadObjectId });
    expect(job).not.toHaveProperty('file');
    expect(cardText(cardOf(t.connector.posts()[posts]))).toContain('Planning');
    expect(await runStore().get(job.runId)).toMatchObject({ kind: 'cert-rotate', state: 'planning', requester: { aadObjectId: OPERATOR.aadObjectId } });
  });
});

describe('cert watch here', () => {
  it('is routed to the certificate watch: this conversation is stored and a check starts', async () => {
    const t = await start();
    await say(OPERATOR, 'cert watch here');
    const stored = await t.redis.get(certWatchConversationKey(t.prefix, t.config.deployment));
    expect(JSON.parse(stored ?? '{}')).toMatchObject({ conversation: { id: t.conversationId } });
    const job = await t.agent.waitForJob('cert-status');
    expect((await runStore().get(job.runId))?.kind).toBe('cert-watch');
  });
});
