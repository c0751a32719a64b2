import { SetupError, type SetupErrorCode } from '../../../core/setup-error.ts';
import type { Verification } from '../../../jobs/cert-types.ts';
import { ActDeliveryMethod, EmailRouterAccessApproval, IncomingDeliveryMethod, MailboxTestStatus, OutgoingDeliveryMethod } from '../../../jobs/crm-values.ts';
import type { FailureGroup } from '../../../jobs/failure-group.ts';
import { odataGuid } from '../../../jobs/mailbox-filter.ts';
import { approveRows } from '../../jobs/mailboxes/approve.ts';
import { mailboxesWithEwsDisabled, enableMailboxEws } from '../../adapters/exchange/ews.ts';
import type { StepHandle } from '../runner.ts';
import { FailureGroups } from '../../jobs/mailboxes/failure-groups.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { configuredMailboxColumns, configuredMailboxSchema, readSelectionWith, type ConfiguredMailbox } from '../../jobs/mailboxes/selection.ts';
import { patchInBatches } from '../../jobs/mailboxes/patch-in-batches.ts';
import type { RunbookEnv, RunbookFacts, RunbookStep, StepCheck } from '../step.ts';
import { runbookProfileId } from './email-profile.ts';
import { mailboxes, stepDetail, throttledUpdate } from '../step-detail.ts';
import { testAndEnable } from '../../jobs/mailboxes/test.ts';

/**
 * The runbook's mailbox steps (procedure.md §5, §6, §7) on the selection `env.filter` (active
 * mailboxes only): configure-mailboxes (profile and delivery methods), approve-email and
 * test-enable. Each reads the selection, works only on the mailboxes that need it (a resumed or
 * repeated run therefore redoes nothing that is done), and checks the result: configure and approve
 * read the selection back; Test & Enable is its own proof.
 */

/** The selection with the columns the three steps compare. */
export function readConfiguredSelection(env: RunbookEnv, onPage?: (rowsSoFar: number) => void): Promise<ConfiguredMailbox[]> {
  return readSelectionWith(env.ctx.crm, env.filter, { select: configuredMailboxColumns, schema: configuredMailboxSchema }, onPage);
}

/** §5: the runbook's profile and Server-Side Synchronization for incoming, outgoing and ACT (2, 2, 1). */
export function needsConfiguring(row: ConfiguredMailbox, profileId: string | undefined): boolean {
  return (
    profileId === undefined ||
    row._emailserverprofile_value !== profileId.toLowerCase() ||
    row.incomingemaildeliverymethod !== IncomingDeliveryMethod.ServerSideSync ||
    row.outgoingemaildeliverymethod !== OutgoingDeliveryMethod.ServerSideSync ||
    row.actdeliverymethod !== ActDeliveryMethod.ServerSideSync
  );
}

/** §6: not approved yet. */
export function needsApproval(row: ConfiguredMailbox): boolean {
  return row.emailrouteraccessapproval !== EmailRouterAccessApproval.Approved;
}

/** Whether the mailbox's appointments, contacts and tasks go through server-side sync (then ACT must pass Test & Enable too). */
export const syncsAct = (row: ConfiguredMailbox) => row.actdeliverymethod === ActDeliveryMethod.ServerSideSync;

/**
 * §7: the last Test & Enable did not succeed: incoming or outgoing not Success (the `untested`
 * filter's rule, without its approval clause since approve-email runs first), or ACT not Success
 * where ACT is set to server-side sync (the runbook sets it so: an ACT that never passed is not done).
 */
export function needsTest(row: ConfiguredMailbox): boolean {
  return (
    row.incomingemailstatus !== MailboxTestStatus.Success ||
    row.outgoingemailstatus !== MailboxTestStatus.Success ||
    (syncsAct(row) && row.actstatus !== MailboxTestStatus.Success)
  );
}

/** "<n> of <m> mailboxes <verb>: <cause> (k), …" with the groups' remediations as the hint. */
function mailboxFailure(code: SetupErrorCode, text: { failed: number; of: number; verb: string; extra?: string }, groups: readonly FailureGroup[], details: Record<string, unknown>): SetupError {
  const causes = groups.slice(0, 3).map((g) => `${g.title} (${g.count})`).join('; ');
  const more = groups.length > 3 ? `; ${groups.length - 3} more causes` : '';
  const message = `${text.failed} of ${mailboxes(text.of)} ${text.verb}${causes ? `: ${causes}${more}` : ''}${text.extra ? `. ${text.extra}` : ''}.`;
  const remediations = [...new Set(groups.slice(0, 3).map((g) => g.remediation))];
  return new SetupError(code, message, {
    hint: `${remediations.join(' ')}${remediations.length > 0 ? ' ' : ''}Then retry the step: only the mailboxes still not done are worked on again.`,
    details,
  });
}

// ---- configure-mailboxes ---------------------------------------------------------------------------

/** The journal data key of the mailboxes configure-mailboxes changed (test-enable of a later attempt needs them). */
export const RECONFIGURED_KEY = 'reconfigured';
/** Its value when the ids do not fit in one journal value: test every mailbox of the selection. */
export const RECONFIGURED_MANY = '*';
/** A journal data value holds at most this many characters (steps/journal.ts entrySchema). */
const MAX_DATA_CHARS = 20_000;

/** The changed mailbox ids as one journal data value: comma-separated when they fit, else the "many" marker. */
export function encodeReconfigured(ids: Iterable<string>): string {
  const text = [...ids].join(',');
  return text.length <= MAX_DATA_CHARS ? text : RECONFIGURED_MANY;
}

/** Puts what an attempt's configure-mailboxes recorded back into the facts (setup-run.ts, on a resume). */
export function restoreReconfigured(facts: RunbookFacts, value: string | undefined): void {
  if (value === undefined || value === '') return;
  if (value === RECONFIGURED_MANY) {
    facts.reconfiguredAll = true;
    return;
  }
  const set = (facts.reconfigured ??= new Set());
  for (const id of value.split(',')) if (id) set.add(id.toLowerCase());
}

/** The journal data of what configure-mailboxes changed in this run so far, over its attempts (none: nothing). */
function reconfiguredData(facts: RunbookFacts): Record<string, string> {
  if (facts.reconfiguredAll === true) return { [RECONFIGURED_KEY]: RECONFIGURED_MANY };
  if (!facts.reconfigured || facts.reconfigured.size === 0) return {};
  return { [RECONFIGURED_KEY]: encodeReconfigured(facts.reconfigured) };
}

async function checkConfigure(env: RunbookEnv): Promise<StepCheck> {
  const profileId = await runbookProfileId(env);
  if (!profileId && env.scope !== 'setup') {
    const message = `There is no email server profile '${env.profile.name}' of type Exchange Online (Hybrid) to configure the mailboxes with.`;
    return { upToDate: false, detail: stepDetail(`cannot go on: ${message}`), blocker: { message, fix: 'Create it first with `@setup profile create` (or `@setup run setup`), or set PROFILE_NAME to the profile to use.' } };
  }
  const rows = await readConfiguredSelection(env);
  const todo = rows.filter((r) => needsConfiguring(r, profileId)).length;
  if (rows.length === 0) return { upToDate: true, detail: 'already done: no mailboxes match the selection' };
  const ews = await mailboxesWithEwsDisabled(env.ctx, rows);
  const ewsText = ews.unchecked !== undefined ? `; EWS of the mailboxes not checked (${ews.unchecked})` : ews.rows.length > 0 ? `; would set EwsEnabled True on ${mailboxes(ews.rows.length)} in Exchange Online` : '';
  if (todo === 0 && ews.rows.length === 0) return { upToDate: true, detail: stepDetail(`already done: all ${mailboxes(rows.length)}${ewsText}`) };
  const created = profileId ? '' : ` (the profile is created by the email-profile step)`;
  const crmText = todo > 0 ? `would configure ${todo} of ${mailboxes(rows.length)} with profile '${env.profile.name}' and server-side sync${created}` : `all ${mailboxes(rows.length)} are configured in CRM`;
  return { upToDate: false, detail: stepDetail(`${crmText}${ewsText}`) };
}

async function applyConfigure(env: RunbookEnv, step: StepHandle) {
  const profileId = await runbookProfileId(env);
  if (!profileId) {
    throw new SetupError('STEP_FAILED', `The email server profile '${env.profile.name}' is not known to this run, so the mailboxes cannot be configured with it.`, {
      hint: 'Create the profile first (`@setup profile create`, or the email-profile step of `@setup run setup`), then configure the mailboxes.',
    });
  }
  const update = throttledUpdate(env, step);
  const rows = await readConfiguredSelection(env, (n) => update(`reading the selection: ${mailboxes(n)}`));
  const todo = rows.filter((r) => needsConfiguring(r, profileId));
  const ews = rows.length === 0 ? { rows: [] } : await mailboxesWithEwsDisabled(env.ctx, rows);
  const ewsNote = ews.unchecked !== undefined ? `; EWS of the mailboxes not checked (${ews.unchecked})` : '';
  if (todo.length === 0 && ews.rows.length === 0) {
    // An earlier attempt may have configured some before it failed: they stay in this step's data.
    return { detail: stepDetail(rows.length === 0 ? 'already done: no mailboxes match the selection' : `already done: all ${mailboxes(rows.length)}${ewsNote}`), wrote: false, changed: false, data: reconfiguredData(env.facts) };
  }
  const failures = new FailureGroups();
  const configured = new Set<string>();
  if (todo.length > 0) {
    let done = 0;
    update(`configuring 0 of ${mailboxes(todo.length)}`, true);
    await patchInBatches(
      env.ctx,
      todo,
      {
        'emailserverprofile@odata.bind': `/emailserverprofiles(${odataGuid(profileId)})`,
        incomingemaildeliverymethod: IncomingDeliveryMethod.ServerSideSync,
        outgoingemaildeliverymethod: OutgoingDeliveryMethod.ServerSideSync,
        actdeliverymethod: ActDeliveryMethod.ServerSideSync,
      },
      {
        onOutcome: (outcome) => {
          done += 1;
          if (outcome.ok) configured.add(outcome.target.mailboxid);
          else failures.add(outcome.target.emailaddress || outcome.target.mailboxid, outcome.error ?? 'failed');
          update(`configured ${configured.size} of ${mailboxes(todo.length)}${failures.total > 0 ? `, ${failures.total} failed` : ''}`, done === todo.length);
        },
      },
    );
  }
  // Exchange Online refuses EWS for a mailbox whose own EwsEnabled is false, whatever CRM says.
  let ewsEnabled = 0;
  if (ews.rows.length > 0) {
    update(`setting EwsEnabled True on ${mailboxes(ews.rows.length)} in Exchange Online`, true);
    const outcome = await enableMailboxEws(env.ctx, ews.rows.map((r) => r.emailaddress));
    const enabled = new Set(outcome.enabled.map((a) => a.toLowerCase()));
    for (const row of ews.rows) if (enabled.has(row.emailaddress.toLowerCase())) configured.add(row.mailboxid);
    for (const failed of outcome.failed) failures.add(failed.address, `Set-CASMailbox -EwsEnabled $true failed in Exchange Online: ${failed.message}`);
    ewsEnabled = outcome.enabled.length;
  }
  for (const id of configured) (env.facts.reconfigured ??= new Set()).add(id.toLowerCase());
  // Kept also when some failed: the next attempt's test-enable tests these (their last test was with the old settings).
  step.keep(reconfiguredData(env.facts));
  await readBack(env, configured, (r) => needsConfiguring(r, profileId), 'configured');
  env.ctx.logger.info({ selected: rows.length, configured: configured.size, ewsEnabled, failed: failures.total }, 'mailboxes configured');
  if (failures.total > 0) {
    throw mailboxFailure('STEP_FAILED', { failed: failures.total, of: todo.length + ews.rows.length, verb: 'could not be configured', extra: `${configured.size} were configured` }, failures.toArray(), {
      failures: failures.toArray(),
      configured: configured.size,
    });
  }
  const ewsText = ewsEnabled > 0 ? `; set EwsEnabled True on ${mailboxes(ewsEnabled)} in Exchange Online` : ewsNote;
  return { detail: stepDetail(`configured ${todo.length > 0 ? todo.length - failures.total : 0} of ${mailboxes(rows.length)}${ewsText}`), wrote: true, changed: false, data: reconfiguredData(env.facts) };
}

/**
 * Reads the selection again: every mailbox CRM said it changed must now pass `stillTodo` as false.
 * A mailbox that left the selection meanwhile (deactivated) is not counted against the step.
 */
async function readBack(env: RunbookEnv, changed: ReadonlySet<string>, stillTodo: (row: ConfiguredMailbox) => boolean, verb: string): Promise<void> {
  if (changed.size === 0) return;
  const rows = await readConfiguredSelection(env);
  const wrong = rows.filter((r) => changed.has(r.mailboxid) && stillTodo(r));
  if (wrong.length > 0) {
    throw new SetupError('STEP_FAILED', `CRM accepted the update of ${mailboxes(changed.size)}, but ${wrong.length} of them read back not ${verb} (for example ${wrong[0]?.emailaddress || wrong[0]?.mailboxid || ''}).`, {
      hint: 'Check in CRM whether a plug-in, a workflow or another administrator changes these mailboxes; then retry the step.',
      details: { notKept: wrong.length },
    });
  }
}

// ---- approve-email ---------------------------------------------------------------------------------

async function checkApprove(env: RunbookEnv): Promise<StepCheck> {
  const rows = await readConfiguredSelection(env);
  const todo = rows.filter(needsApproval).length;
  if (rows.length === 0) return { upToDate: true, detail: 'already done: no mailboxes match the selection' };
  if (todo === 0) return { upToDate: true, detail: stepDetail(`already done: all ${mailboxes(rows.length)} approved`) };
  return { upToDate: false, detail: stepDetail(`would approve ${todo} of ${mailboxes(rows.length)}`) };
}

async function applyApprove(env: RunbookEnv, step: StepHandle) {
  const update = throttledUpdate(env, step);
  const rows = await readConfiguredSelection(env, (n) => update(`reading the selection: ${mailboxes(n)}`));
  const todo = rows.filter(needsApproval);
  if (todo.length === 0) {
    return { detail: stepDetail(rows.length === 0 ? 'already done: no mailboxes match the selection' : `already done: all ${mailboxes(rows.length)} approved`), wrote: false, changed: false };
  }
  const approvedIds = new Set<string>();
  let done = 0;
  update(`approving 0 of ${mailboxes(todo.length)}`, true);
  const { failures } = await approveRows(env.ctx, todo, (outcome, failed) => {
    done += 1;
    if (outcome.ok) approvedIds.add(outcome.target.mailboxid);
    update(`approved ${approvedIds.size} of ${mailboxes(todo.length)}${failed > 0 ? `, ${failed} failed` : ''}`, done === todo.length);
  });
  await readBack(env, approvedIds, needsApproval, 'approved');
  env.ctx.logger.info({ selected: rows.length, approved: approvedIds.size, failed: failures.total }, 'mailboxes approved');
  if (failures.total > 0) {
    throw mailboxFailure('STEP_FAILED', { failed: failures.total, of: todo.length, verb: 'could not be approved', extra: `${approvedIds.size} were approved` }, failures.toArray(), {
      failures: failures.toArray(),
      approved: approvedIds.size,
    });
  }
  return { detail: stepDetail(`approved ${approvedIds.size} of ${mailboxes(rows.length)}`), wrote: true, changed: false };
}

// ---- test-enable -----------------------------------------------------------------------------------

/**
 * The mailboxes test-enable tests: the last test did not succeed, or their configuration changed
 * in this run (a test that passed with another profile proves nothing about the new one). In a plan
 * (scope setup) the mailboxes configure-mailboxes would change count as changed.
 */
function toTest(env: RunbookEnv, rows: readonly ConfiguredMailbox[], planning: boolean): ConfiguredMailbox[] {
  const profileId = env.facts.profileId;
  if (!planning && env.facts.reconfiguredAll === true) return [...rows];
  return rows.filter((r) => needsTest(r) || env.facts.reconfigured?.has(r.mailboxid.toLowerCase()) === true || (planning && env.scope === 'setup' && needsConfiguring(r, profileId)));
}

async function checkTest(env: RunbookEnv): Promise<StepCheck> {
  const rows = await readConfiguredSelection(env);
  const todo = toTest(env, rows, true).length;
  if (rows.length === 0) return { upToDate: true, detail: 'already done: no mailboxes match the selection' };
  if (todo === 0) return { upToDate: true, detail: stepDetail(`already done: all ${mailboxes(rows.length)} passed Test & Enable`) };
  return { upToDate: false, detail: stepDetail(`would Test & Enable ${todo} of ${mailboxes(rows.length)}`) };
}

const phaseText: Readonly<Record<string, string>> = { scheduling: 'scheduling', waiting: 'waiting for results', collecting: 'reading the alerts' };

async function applyTest(env: RunbookEnv, step: StepHandle) {
  const update = throttledUpdate(env, step);
  const rows = await readConfiguredSelection(env, (n) => update(`reading the selection: ${mailboxes(n)}`));
  const todo = toTest(env, rows, false);
  if (todo.length === 0) {
    const detail = stepDetail(rows.length === 0 ? 'already done: no mailboxes match the selection' : `already done: all ${mailboxes(rows.length)} passed Test & Enable`);
    return { detail, wrote: false, changed: false };
  }
  // The Test & Enable machinery reports job progress; in a run it becomes the step's running detail.
  let lastPhase = '';
  const ctx: JobContext = {
    ...env.ctx,
    report: (p) => {
      const phase = phaseText[p.phase] ?? p.phase;
      update(`Test & Enable of ${mailboxes(todo.length)}: ${phase} ${p.done} of ${p.total}`, phase !== lastPhase);
      lastPhase = phase;
    },
  };
  const outcome = await testAndEnable(todo, ctx, { requireActFor: new Set(todo.filter(syncsAct).map((r) => r.mailboxid)) });
  const testReport: Verification = {
    selected: outcome.selected,
    succeeded: outcome.succeeded,
    failed: outcome.failed,
    noResult: outcome.noResult,
    failures: outcome.failures,
  };
  env.ctx.logger.info({ selected: testReport.selected, succeeded: testReport.succeeded, failed: testReport.failed, noResult: testReport.noResult }, 'Test & Enable finished');
  const bad = testReport.failed + testReport.noResult;
  if (bad > 0) {
    const waited = Math.round(env.ctx.settings.TEST_TIMEOUT_MS / 1000);
    const extra = [
      testReport.noResult > 0 ? `${testReport.noResult} had no result within ${waited} s (are the asynchronous services running?)` : '',
      `${testReport.succeeded} succeeded`,
    ].filter(Boolean).join('; ');
    throw mailboxFailure('TEST_ENABLE_FAILED', { failed: bad, of: todo.length, verb: 'failed Test & Enable', extra }, testReport.failures, { testReport });
  }
  return { detail: stepDetail(`Test & Enable succeeded for ${testReport.succeeded} of ${mailboxes(rows.length)}`), wrote: true, changed: false, testReport };
}

/** configure-mailboxes (procedure.md §5). */
export const configureMailboxesStep: RunbookStep = { id: 'configure-mailboxes', check: checkConfigure, apply: applyConfigure };
/** approve-email (procedure.md §6). */
export const approveEmailStep: RunbookStep = { id: 'approve-email', check: checkApprove, apply: applyApprove };
/** test-enable (procedure.md §7): any failure (or no result) halts the run with the grouped causes. */
export const testEnableStep: RunbookStep = { id: 'test-enable', check: checkTest, apply: applyTest };
