import { SetupError, type SetupErrorCode } from '../../../core/setup-error.ts';
import { ActDeliveryMethod, EmailRouterAccessApproval, IncomingDeliveryMethod, MailboxTestStatus, OutgoingDeliveryMethod } from '../../../jobs/crm-values.ts';
import type { FailureGroup } from '../../../jobs/failure-group.ts';
import { configuredMailboxColumns, configuredMailboxSchema, readSelectionWith, type ConfiguredMailbox } from '../../jobs/mailboxes/selection.ts';
import type { RunbookEnv, RunbookFacts } from '../step.ts';
import { mailboxes } from '../detail.ts';

/**
 * The runbook's mailbox steps (procedure.md §5, §6, §7) on the selection `env.filter` (active
 * mailboxes only): configure-mailboxes (profile and delivery methods), approve-email and
 * test-enable. Each reads the selection, works only on the mailboxes that need it (a resumed or
 * repeated run therefore redoes nothing that is done), and checks the result: configure and approve
 * read the selection back; Test & Enable is its own proof. This file holds what the three share
 * (configure-mailboxes.ts, approve-email.ts, test-enable.ts are the steps).
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
export function mailboxFailure(code: SetupErrorCode, text: { failed: number; of: number; verb: string; extra?: string }, groups: readonly FailureGroup[], details: Record<string, unknown>): SetupError {
  const causes = groups.slice(0, 3).map((g) => `${g.title} (${g.count})`).join('; ');
  const more = groups.length > 3 ? `; ${groups.length - 3} more causes` : '';
  const message = `${text.failed} of ${mailboxes(text.of)} ${text.verb}${causes ? `: ${causes}${more}` : ''}${text.extra ? `. ${text.extra}` : ''}.`;
  const remediations = [...new Set(groups.slice(0, 3).map((g) => g.remediation))];
  return new SetupError(code, message, {
    hint: `${remediations.join(' ')}${remediations.length > 0 ? ' ' : ''}Then retry the step: only the mailboxes still not done are worked on again.`,
    details,
  });
}


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
export function reconfiguredData(facts: RunbookFacts): Record<string, string> {
  if (facts.reconfiguredAll === true) return { [RECONFIGURED_KEY]: RECONFIGURED_MANY };
  if (!facts.reconfigured || facts.reconfigured.size === 0) return {};
  return { [RECONFIGURED_KEY]: encodeReconfigured(facts.reconfigured) };
}

/**
 * Reads the selection again: every mailbox CRM said it changed must now pass `stillTodo` as false.
 * A mailbox that left the selection meanwhile (deactivated) is not counted against the step.
 */
export async function readBack(env: RunbookEnv, changed: ReadonlySet<string>, stillTodo: (row: ConfiguredMailbox) => boolean, verb: string): Promise<void> {
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
