import { describe, expect, it } from 'vitest';
import { stepTitles } from '../../jobs/cert-types.ts';
import { checklistQuestions, preflightTitles, scopeStepIds } from '../../jobs/runbook-types.ts';

const RESTART_AT = scopeStepIds.setup.indexOf('restart-services');
import { createAuditLog } from '../../core/audit-log.ts';
import {
  APPROVER,
  OPERATOR,
  SECOND_APPROVER,
  STRANGER,
  clickCard,
  invokeActivity,
  twoApproversEnv,
  type User,
} from '../support/bot-harness.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { botSession } from '../support/bot-session.ts';
import { certPlanResult } from '../support/cert-fixtures.ts';
import { CERT_THUMBPRINT, TENANT_ID, preflightChecks, preflightResult, runSteps, setupPlan, setupRunResult } from './setup-fixtures.ts';

const { start, harness, say, click, runStore, latestCard, reportAndWait, jobIds } = botSession({ env: twoApproversEnv });

const confirmData = (runId: string, a: string, b: string) => ({ runId, 'checklist-hybrid-connector': a, 'checklist-exchange-enabled': b });

/** `command` by `from`, the setup-plan job answered with `plan`. */
async function planned(from: User, command: string, plan = setupPlan('setup')) {
  const t = harness();
  const planning = await say(from, command);
  expect(cardText(cardOf(planning))).toContain('Planning');
  const job = await t.agent.waitForJob('setup-plan');
  const card = await reportAndWait(planning.activityId, job.runId, 'setup-plan', { kind: 'result', result: plan });
  return { runId: job.runId, cardId: planning.activityId, card, job };
}

/** A `run setup` plan with the checklist confirmed by its requester and approved by a second approver. */
async function approvedSetup(requester: User = APPROVER) {
  const t = harness();
  const p = await planned(requester, 'run setup');
  await clickCard(t, requester, 'setup.confirm-checklist', p.runId, p.cardId, invokeActivity(t, requester, 'setup.confirm-checklist', confirmData(p.runId, 'true', 'true'), p.cardId));
  const approved = await click(SECOND_APPROVER, 'run.approve', p.runId, p.cardId);
  expect(cardText(approved.body.value)).toContain(`Approved by ${SECOND_APPROVER.name}`);
  const job = await t.agent.waitForJob('setup-run', p.runId);
  return { ...p, runJob: job };
}

describe('run setup', () => {
  it('plan → checklist by the requester only → a second approver approves → steps → results', async () => {
    const t = await start();
    const { runId, cardId, card, job } = await planned(APPROVER, 'run setup');
    expect(job).toEqual({ type: 'setup-plan', runId, deployment: 'contoso', requestedBy: APPROVER.aadObjectId, scope: 'setup', filter: { kind: 'all' } });
    const plan = cardText(card);
    expect(plan).toContain(`○ ${stepTitles['tenant-id']}: would change tenant-id`);
    expect(plan).toContain(`⤼ ${stepTitles.adfs}: skipped: SETUP_ADFS is off`);
    expect(plan).toContain(`⚠ ${preflightTitles['certificate-servers']}`);
    expect(plan).toContain('What to do: Nothing: the runbook imports it.');
    expect(plan).toContain(TENANT_ID);
    expect(plan).toContain(CERT_THUMBPRINT);
    expect(plan).toContain('540');
    expect(plan).toContain('Exchange Online');
    expect(plan).toContain(`Needs an approver other than ${APPROVER.name}`);
    expect(card.body?.filter((el) => (el as { type: string }).type === 'Input.Toggle').map((el) => (el as { title: string }).title)).toEqual(Object.values(checklistQuestions));
    expect(card.actions?.map((a) => [a.title, a.verb])).toEqual([['Confirm checklist', 'setup.confirm-checklist'], ['Approve', 'run.approve'], ['Reject', 'run.reject']]);

    // Approve is refused until the requester confirmed the checklist.
    const early = await click(SECOND_APPROVER, 'run.approve', runId, cardId);
    expect(early.body.value).toContain('The requester must confirm the checklist first');
    // Only the requester confirms; both toggles must be on.
    const other = await clickCard(t, SECOND_APPROVER, 'setup.confirm-checklist', runId, cardId, invokeActivity(t, SECOND_APPROVER, 'setup.confirm-checklist', confirmData(runId, 'true', 'true'), cardId));
    expect(other.body.value).toContain('can confirm the checklist');
    const half = await clickCard(t, APPROVER, 'setup.confirm-checklist', runId, cardId, invokeActivity(t, APPROVER, 'setup.confirm-checklist', confirmData(runId, 'true', 'false'), cardId));
    expect(half.body.value).toContain('Switch on both checklist questions');
    expect((await runStore().get(runId))?.checklist).toBeUndefined();
    const confirmed = await clickCard(t, APPROVER, 'setup.confirm-checklist', runId, cardId, invokeActivity(t, APPROVER, 'setup.confirm-checklist', confirmData(runId, 'true', 'true'), cardId));
    expect(cardText(confirmed.body.value)).toContain(`Confirmed by ${APPROVER.name}`);
    const forAll = latestCard(cardId);
    expect(forAll.actions?.map((a) => a.title)).toEqual(['Approve', 'Reject']);
    expect(forAll.body?.some((el) => (el as { type: string }).type === 'Input.Toggle')).toBe(false);
    expect((await runStore().get(runId))?.checklist?.confirmedBy.aadObjectId).toBe(APPROVER.aadObjectId);

    // Two-person rule: the requester (an approver) and an operator are refused; nothing is queued.
    const own = await click(APPROVER, 'run.approve', runId, cardId);
    expect(own.body.value).toBe('You asked for this set-up run; another approver must approve it.');
    const operator = await click(OPERATOR, 'run.approve', runId, cardId);
    expect(String(operator.body.value)).toContain('SETUP_APPROVERS');
    expect(await jobIds()).toEqual([`${runId}-setup-plan`]);

    const approved = await click(SECOND_APPROVER, 'run.approve', runId, cardId);
    expect(cardText(approved.body.value)).toContain(`Approved by ${SECOND_APPROVER.name}`);
    const runJob = await t.agent.waitForJob('setup-run', runId);
    expect(runJob).toEqual({
      type: 'setup-run',
      runId,
      deployment: 'contoso',
      requestedBy: APPROVER.aadObjectId,
      scope: 'setup',
      filter: { kind: 'all' },
      plannedMailboxes: 540,
      tenantId: TENANT_ID,
      certThumbprint: CERT_THUMBPRINT,
      approvedBy: SECOND_APPROVER.aadObjectId,
      checklistConfirmedBy: APPROVER.aadObjectId,
      attempt: 1,
    });
    // `run setup` holds the deployment's one certificate change while it runs.
    expect(await runStore().certActive('contoso')).toBe(runId);

    await reportAndWait(cardId, runId, 'setup-run', { kind: 'started' });
    expect((await runStore().get(runId))?.state).toBe('running');
    t.clock.advance(5_000);
    const progress = cardText(await reportAndWait(cardId, runId, 'setup-run', { kind: 'progress', progress: { phase: 'step', done: RESTART_AT, total: scopeStepIds.setup.length, steps: runSteps('setup', RESTART_AT, 'running', 'restarting on CRMAPP01') } }));
    expect(progress).toContain(`✓ ${stepTitles['tenant-id']}: done`);
    expect(progress).toContain(`▶ ${stepTitles['restart-services']}: running. restarting on CRMAPP01`);
    expect(progress).toContain(`○ ${stepTitles['email-profile']}: pending`);

    const posts = t.connector.posts().length;
    t.clock.advance(5_000);
    const final = cardText(await reportAndWait(cardId, runId, 'setup-run', { kind: 'result', result: setupRunResult('setup') }));
    expect(final).toContain('Finished: every step is done (2 changed something)');
    await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
    const results = cardText(cardOf(t.connector.posts().at(-1)));
    expect(results).toContain(`${stepTitles['tenant-id']}: changed tenant-id`);
    expect(results).toContain('Test & Enable report');
    expect(results).toContain('The mailbox owner lacks privileges (2)');
    expect(results).toContain('What to do: Give the owners the Send Email as Another User privilege.');
    expect(results).toContain('Check the first emails arrive in CRM within 15 minutes.');
    expect((await runStore().get(runId))?.state).toBe('succeeded');
    expect(await runStore().certActive('contoso')).toBeUndefined();

    const audit = await createAuditLog({ redis: t.redis, prefix: t.prefix }).latest('contoso', 50);
    expect(audit.find((e) => e.kind === 'approval' && e.what === 'approve' && e.runId === runId)).toMatchObject({ actor: SECOND_APPROVER.name, actorId: SECOND_APPROVER.aadObjectId, outcome: 'approved' });
    expect(audit.find((e) => e.kind === 'approval' && e.what === 'confirm checklist')).toMatchObject({ actorId: APPROVER.aadObjectId, runId });
    expect(audit.find((e) => e.kind === 'result' && e.what.startsWith('setup-run'))?.outcome).toContain('succeeded: changed tenant-id, email-profile');
  });

  it('a dry run shows the plan without buttons and queues no run', async () => {
    const t = await start();
    const { runId, card, job } = await planned(OPERATOR, 'run setup --dry-run email ends with @contoso.com', setupPlan('setup', { done: ['preflight', 'import'] }));
    expect(job).toMatchObject({ scope: 'setup', filter: { kind: 'domain', domain: 'contoso.com' } });
    const text = cardText(card);
    expect(text).toContain(`✓ ${stepTitles.import}: already done`);
    expect(text).toContain('Dry run: 12 steps would change something. Nothing was changed.');
    expect(card.actions ?? []).toEqual([]);
    const run = await runStore().get(runId);
    expect(run).toMatchObject({ state: 'succeeded', dryRun: true });
    expect(await jobIds()).toEqual([`${runId}-setup-plan`]);
    expect(t.agent.jobsOf('setup-run')).toEqual([]);
  });

  it('nothing to change ends the run; a blocked plan lists each blocker with its fix', async () => {
    await start();
    const everything = ['preflight', 'import', 'grant-key-access', 'register-crm', 'entra-key-credential', 's2s-settings', 'tenant-id', 'ews-access', 'restart-services', 'email-profile', 'org-defaults', 'configure-mailboxes', 'approve-email', 'test-enable'];
    const none = await planned(OPERATOR, 'run setup', setupPlan('setup', { done: everything }));
    expect(cardText(none.card)).toContain('Nothing to change: every step is already done.');
    expect(none.card.actions ?? []).toEqual([]);
    expect((await runStore().get(none.runId))?.state).toBe('succeeded');

    harness().agent.jobs.length = 0;
    const blocked = await planned(OPERATOR, 'run setup', setupPlan('setup', { blockers: [{ message: 'The agent is not a local administrator.', fix: 'Run the agent service as a member of BUILTIN\\Administrators.' }] }));
    const text = cardText(blocked.card);
    expect(text).toContain('Cannot run: one thing blocks the plan.');
    expect(text).toContain('The agent is not a local administrator.');
    expect(text).toContain('What to do: Run the agent service as a member of BUILTIN\\Administrators.');
    expect(blocked.card.actions ?? []).toEqual([]);
    expect((await runStore().get(blocked.runId))?.state).toBe('plan-failed');
  });

  it('a failed step halts the run with the cause and the fix; Retry step (approvers) runs attempt 2', async () => {
    const t = await start();
    const { runId, cardId } = await approvedSetup();
    await reportAndWait(cardId, runId, 'setup-run', { kind: 'started' });
    t.clock.advance(5_000);
    const halted = await reportAndWait(cardId, runId, 'setup-run', {
      kind: 'failed',
      error: { code: 'TENANT_ID_REJECTED', message: 'CRM refused to set S2STenantId.', hint: 'Run the deployment tool as a deployment administrator, then Retry.' },
      steps: runSteps('setup', 6, 'failed', 'Set-CrmAdvancedSetting failed'),
    });
    const text = cardText(halted);
    expect(text).toContain(`Halted at: ${stepTitles['tenant-id']}`);
    expect(text).toContain('Cause (TENANT_ID_REJECTED): CRM refused to set S2STenantId.');
    expect(text).toContain('What to do: Run the deployment tool as a deployment administrator, then Retry.');
    expect(halted.actions?.map((a) => [a.title, a.verb])).toEqual([['Retry step', 'cert.resume'], ['Cancel', 'run.cancel']]);
    expect((await runStore().get(runId))?.state).toBe('halted');
    expect(await runStore().certActive('contoso')).toBe(runId);

    const refused = await click(OPERATOR, 'cert.resume', runId, cardId);
    expect(String(refused.body.value)).toContain('SETUP_APPROVERS');
    const retried = await click(APPROVER, 'cert.resume', runId, cardId);
    expect(cardText(retried.body.value)).toContain(`Retried by ${APPROVER.name} (attempt 2)`);
    await t.connector.waitFor(() => t.agent.jobsOf('setup-run', runId).length === 2, 'the attempt 2 job');
    expect(t.agent.jobsOf('setup-run', runId)[1]).toMatchObject({ attempt: 2, resumedBy: APPROVER.aadObjectId, approvedBy: SECOND_APPROVER.aadObjectId, checklistConfirmedBy: APPROVER.aadObjectId });
    expect(await jobIds()).toEqual([`${runId}-setup-plan`, `${runId}-setup-run`, `${runId}-setup-run-a2`].sort());

    // A late report of attempt 1 is dropped; attempt 2's result ends the run.
    await t.agent.report(runId, 'setup-run', { kind: 'result', result: setupRunResult('setup') });
    t.clock.advance(5_000);
    const done = cardText(await reportAndWait(cardId, runId, 'setup-run', { kind: 'result', result: setupRunResult('setup', []) }, 2));
    expect(done).toContain('Finished: nothing to change, every step was already done.');
    expect((await runStore().get(runId))?.state).toBe('succeeded');
  });

  it('a run whose job stalled too often (JOB_STALLED, no step states) halts with the last steps seen and Retry step', async () => {
    const t = await start();
    const { runId, cardId } = await approvedSetup();
    await reportAndWait(cardId, runId, 'setup-run', { kind: 'started' });
    t.clock.advance(5_000);
    await reportAndWait(cardId, runId, 'setup-run', { kind: 'progress', progress: { phase: 'step', done: 6, total: 14, steps: runSteps('setup', 6, 'running', 'setting S2STenantId') } });
    t.clock.advance(5_000);
    const halted = await reportAndWait(cardId, runId, 'setup-run', {
      kind: 'failed',
      error: { code: 'JOB_STALLED', message: 'The agent stopped during a step too often.', hint: 'Check the agent host, then Retry step.' },
    });
    expect(halted.actions?.map((a) => a.title)).toEqual(['Retry step', 'Cancel']);
    const run = await runStore().get(runId);
    expect(run?.state).toBe('halted');
    expect(run?.steps?.find((st) => st.id === 'tenant-id')?.state).toBe('running');
    expect(await runStore().certActive('contoso')).toBe(runId);
  });

  it.each([
    ['PLAN_CHANGED', { code: 'PLAN_CHANGED', message: 'The selection now matches 900 mailboxes; the plan showed 540.', hint: 'What was approved is what runs: ask for a new plan (@setup run setup) and have it approved.' }, runSteps('setup', 0)],
    ['TWO_PERSON_RULE', { code: 'TWO_PERSON_RULE', message: 'The approver is the requester.' }, undefined],
    ['an error before the first step', { code: 'CERT_REQUIREMENTS', message: 'There is no usable certificate.' }, undefined],
  ] as const)('a failed run setup whose error is not about a step (%s) fails, without Retry, and frees the certificate slot', async (_name, error, steps) => {
    const t = await start();
    const { runId, cardId } = await approvedSetup(OPERATOR);
    await reportAndWait(cardId, runId, 'setup-run', { kind: 'started' });
    expect(await runStore().certActive('contoso')).toBe(runId);
    t.clock.advance(5_000);
    const card = await reportAndWait(cardId, runId, 'setup-run', { kind: 'failed', error, ...(steps ? { steps: [...steps] } : {}) });
    const text = cardText(card);
    expect(text).toContain(`Failed (${error.code}): ${error.message}`);
    expect(text).toContain('Ask for a new plan: `@setup run setup`');
    expect(text).not.toContain('Retry step');
    expect(card.actions ?? []).toEqual([]);
    expect((await runStore().get(runId))?.state).toBe('failed');
    expect(await runStore().certActive('contoso')).toBeUndefined();
    // Nothing to resume: a typed resume changes nothing and queues no attempt 2.
    await say(APPROVER, `resume ${runId}`);
    expect((await runStore().get(runId))?.state).toBe('failed');
    expect(t.agent.jobsOf('setup-run', runId)).toHaveLength(1);
  });

  it('one certificate change at a time: a halted run setup holds the slot against a rotation, and a rotation against run setup', async () => {
    const t = await start();
    const setup = await approvedSetup(OPERATOR);
    await reportAndWait(setup.cardId, setup.runId, 'setup-run', { kind: 'failed', error: { code: 'IMPORT_FAILED', message: 'Import failed.' }, steps: runSteps('setup', 1, 'failed') });
    expect((await runStore().get(setup.runId))?.state).toBe('halted');

    const rotation = await say(APPROVER, 'cert rotate s2s-new.pfx');
    const certPlan = await t.agent.waitForJob('cert-plan');
    await reportAndWait(rotation.activityId, certPlan.runId, 'cert-plan', { kind: 'result', result: certPlanResult() });
    const busy = await click(SECOND_APPROVER, 'run.approve', certPlan.runId, rotation.activityId);
    expect(busy.body.value).toContain(`run ${setup.runId} (halted); it is a halted \`run setup\`: Retry step or Cancel it on its card`);
    expect((await runStore().get(certPlan.runId))?.state).toBe('awaiting-approval');

    // Cancelling the halted run frees the slot: the rotation is approved and then holds it.
    await click(OPERATOR, 'run.cancel', setup.runId, setup.cardId);
    await click(SECOND_APPROVER, 'run.approve', certPlan.runId, rotation.activityId);
    expect(await runStore().certActive('contoso')).toBe(certPlan.runId);
    t.agent.jobs.length = 0;
    const next = await planned(OPERATOR, 'run setup');
    await clickCard(t, OPERATOR, 'setup.confirm-checklist', next.runId, next.cardId, invokeActivity(t, OPERATOR, 'setup.confirm-checklist', confirmData(next.runId, 'true', 'true'), next.cardId));
    const refused = await click(APPROVER, 'run.approve', next.runId, next.cardId);
    expect(refused.body.value).toContain(`Another certificate change is in progress: run ${certPlan.runId}`);
    expect((await runStore().get(next.runId))?.state).toBe('awaiting-approval');
  });

  it("a non-operator's run setup queues nothing", async () => {
    const t = await start();
    const reply = await say(STRANGER, 'run setup');
    expect(cardText(cardOf(reply))).toContain('SETUP_OPERATORS');
    expect(await jobIds()).toEqual([]);
    expect(await t.redis.keys(`${t.prefix}:run:*`)).toEqual([]);
  });
});

describe('the smaller runbook commands', () => {
  it('profile create: any approver, also the requester when an approver; the job carries the scope without a filter', async () => {
    const t = await start();
    const { runId, cardId, card, job } = await planned(APPROVER, 'profile create', setupPlan('profile'));
    expect(job).toEqual({ type: 'setup-plan', runId, deployment: 'contoso', requestedBy: APPROVER.aadObjectId, scope: 'profile' });
    expect(cardText(card)).toContain('Needs an approver (SETUP_APPROVERS)');
    expect(card.actions?.map((a) => a.title)).toEqual(['Approve', 'Reject']);
    await click(APPROVER, 'run.approve', runId, cardId);
    const runJob = await t.agent.waitForJob('setup-run', runId);
    expect(runJob).toEqual({ type: 'setup-run', runId, deployment: 'contoso', requestedBy: APPROVER.aadObjectId, scope: 'profile', plannedMailboxes: 0, tenantId: null, certThumbprint: null, approvedBy: APPROVER.aadObjectId, attempt: 1 });
    expect(await runStore().certActive('contoso')).toBeUndefined();
  });

  it('tenant show is a dry run; configure mailboxes carries its filter', async () => {
    const t = await start();
    const show = await planned(OPERATOR, 'tenant show', setupPlan('tenant'));
    expect(show.job).toMatchObject({ scope: 'tenant' });
    expect(cardText(show.card)).toContain('Dry run');
    expect(show.card.actions ?? []).toEqual([]);
    expect(await runStore().get(show.runId)).toMatchObject({ kind: 'tenant', dryRun: true, state: 'succeeded' });

    t.agent.jobs.length = 0;
    const configure = await planned(OPERATOR, 'configure mailboxes pending', setupPlan('configure', { mailboxes: 12 }));
    expect(configure.job).toMatchObject({ scope: 'configure', filter: { kind: 'pending' } });
    await click(APPROVER, 'run.approve', configure.runId, configure.cardId);
    expect(await t.agent.waitForJob('setup-run', configure.runId)).toMatchObject({ scope: 'configure', filter: { kind: 'pending' }, plannedMailboxes: 12 });
  });

  it('preflight: every check with its mark and fix, and the checklist as reminders', async () => {
    const t = await start();
    const checking = await say(OPERATOR, 'preflight');
    expect(cardText(cardOf(checking))).toContain('Checking');
    const job = await t.agent.waitForJob('preflight');
    expect(job).toEqual({ type: 'preflight', runId: job.runId, deployment: 'contoso', requestedBy: OPERATOR.aadObjectId });
    const checks = preflightChecks({ 'local-admin': { status: 'failed', detail: 'not an administrator', fix: 'Add the agent account to BUILTIN\\Administrators.' } });
    const text = cardText(await reportAndWait(checking.activityId, job.runId, 'preflight', { kind: 'result', result: preflightResult(checks) }));
    expect(text).toContain('Not ready: 1 check failed.');
    expect(text).toContain(`✗ ${preflightTitles['local-admin']}`);
    expect(text).toContain('What to do: Add the agent account to BUILTIN\\Administrators.');
    expect(text).toContain(`✓ ${preflightTitles['crm-reachable']}`);
    expect(text).toContain(`⚠ ${preflightTitles['certificate-servers']}`);
    expect(text).toContain(checklistQuestions['hybrid-connector']);
    expect((await runStore().get(job.runId))?.state).toBe('succeeded');
  });
});
