import { z } from 'zod';
import { SetupError } from '../../../core/setup-error.ts';
import { ActDeliveryMethod, MailboxTestStatus } from '../../../jobs/crm-values.ts';
import type { StepHandle } from '../runner.ts';
import { FailureGroups } from '../../jobs/mailboxes/failure-groups.ts';
import { TRACE_SET, configuredMailboxColumns, configuredMailboxSchema, guidSchema, readSelectionWith } from '../../jobs/mailboxes/selection.ts';
import { classifyFailure } from '../../runtime/known-errors.ts';
import { odataGuid } from '../../../jobs/mailbox-filter.ts';
import { patchInBatches } from '../../jobs/mailboxes/patch-in-batches.ts';
import type { RunbookEnv, RunbookStep, StepCheck } from '../step.ts';
import { mailboxes, stepDetail, throttledUpdate } from '../detail.ts';

/**
 * mark-primary-org (procedure.md §7; d365-contract.md, mailbox `orgmarkedasprimaryforexchangesync`):
 * the Web API form of Test & Enable's "Sync items with Exchange from this organization only"
 * (flag 4). For the mailboxes of the selection whose appointments, contacts and tasks go through
 * server-side sync, whose ACT failed and whose newest alert says "configured with another org",
 * PATCH orgmarkedasprimaryforexchangesync true; the scope's test-enable step then tests them again.
 * Read back like the other mailbox steps; a mailbox already marked is left alone.
 */

const rowSchema = configuredMailboxSchema.extend({ orgmarkedasprimaryforexchangesync: z.boolean().nullable().optional() });
type Row = z.output<typeof rowSchema>;
const columns = [...configuredMailboxColumns, 'orgmarkedasprimaryforexchangesync'] as const;

/** ACT through server-side sync, failed, and not yet this organization's: a candidate (its alert decides). */
export function actFailedElsewhere(row: Row): boolean {
  return row.actdeliverymethod === ActDeliveryMethod.ServerSideSync && row.actstatus === MailboxTestStatus.Failure && row.orgmarkedasprimaryforexchangesync !== true;
}

const read = (env: RunbookEnv, onPage?: (n: number) => void) => readSelectionWith(env.ctx.crm, env.filter, { select: columns, schema: rowSchema }, onPage);

const alertSchema = z.object({ text: z.string().nullable().optional(), _regardingobjectid_value: guidSchema.nullable().optional(), modifiedon: z.string().nullable().optional() });
/** known-errors.ts' cause for "configured with another org". */
const ANOTHER_ORGANIZATION = 'another-organization';
/** Mailbox ids per alert query (an `or` of GUID literals, well within a URL). */
const ALERT_QUERY_IDS = 50;

/**
 * The candidates whose newest alert (created or updated, d365-contract.md "Alerts") says their ACT
 * is configured with another organization. A mailbox failing for another reason is not taken from
 * the organization it may rightly sync with.
 */
async function tiedToAnotherOrganization(env: RunbookEnv, candidates: readonly Row[]): Promise<Row[]> {
  const newest = new Map<string, { text: string; at: string }>();
  for (let i = 0; i < candidates.length; i += ALERT_QUERY_IDS) {
    const ids = candidates.slice(i, i + ALERT_QUERY_IDS).map((r) => `_regardingobjectid_value eq ${odataGuid(r.mailboxid)}`);
    for await (const page of env.ctx.crm.getAll(TRACE_SET, { select: ['text', '_regardingobjectid_value', 'modifiedon'], filter: ids.join(' or '), schema: alertSchema })) {
      for (const alert of page) {
        const id = alert._regardingobjectid_value;
        if (!id || !alert.text) continue;
        const at = alert.modifiedon ?? '';
        const seen = newest.get(id);
        if (!seen || at > seen.at) newest.set(id, { text: alert.text, at });
      }
    }
  }
  return candidates.filter((r) => {
    const alert = newest.get(r.mailboxid);
    return alert !== undefined && classifyFailure(alert.text).cause === ANOTHER_ORGANIZATION;
  });
}

async function toMark(env: RunbookEnv, rows: readonly Row[]): Promise<Row[]> {
  const candidates = rows.filter(actFailedElsewhere);
  return candidates.length === 0 ? [] : tiedToAnotherOrganization(env, candidates);
}

async function check(env: RunbookEnv): Promise<StepCheck> {
  const rows = await read(env);
  const todo = (await toMark(env, rows)).length;
  if (rows.length === 0) return { upToDate: true, detail: 'already done: no mailboxes match the selection' };
  if (todo === 0) return { upToDate: true, detail: stepDetail(`already done: none of the ${mailboxes(rows.length)} has a failing ACT that another organization holds`) };
  return { upToDate: false, detail: stepDetail(`would mark ${todo} of ${mailboxes(rows.length)} to sync items with Exchange from this organization only`) };
}

async function apply(env: RunbookEnv, step: StepHandle) {
  const update = throttledUpdate(env, step);
  const rows = await read(env, (n) => update(`reading the selection: ${mailboxes(n)}`));
  const todo = await toMark(env, rows);
  if (todo.length === 0) return { detail: stepDetail(`already done: none of the ${mailboxes(rows.length)} needs it`), wrote: false, changed: false };
  const failures = new FailureGroups();
  const marked = new Set<string>();
  await patchInBatches(env.ctx, todo, { orgmarkedasprimaryforexchangesync: true }, {
    onOutcome: (outcome) => {
      if (outcome.ok) marked.add(outcome.target.mailboxid);
      else failures.add(outcome.target.emailaddress || outcome.target.mailboxid, outcome.error ?? 'failed');
      update(`marked ${marked.size} of ${mailboxes(todo.length)}`);
    },
  });
  // test-enable tests them again, even one whose ACT status reads Success by the time it runs.
  for (const id of marked) (env.facts.reconfigured ??= new Set()).add(id.toLowerCase());
  const after = await read(env);
  const notKept = after.filter((r: Row) => marked.has(r.mailboxid) && r.orgmarkedasprimaryforexchangesync !== true);
  if (notKept.length > 0) {
    throw new SetupError('STEP_FAILED', `CRM accepted the update of ${mailboxes(marked.size)}, but ${notKept.length} read back without orgmarkedasprimaryforexchangesync (for example ${notKept[0]?.emailaddress ?? ''}).`, {
      hint: 'Check in CRM whether a plug-in or another administrator changes these mailboxes; then Retry step.',
    });
  }
  if (failures.total > 0) {
    const groups = failures.toArray();
    throw new SetupError('STEP_FAILED', `${failures.total} of ${mailboxes(todo.length)} could not be marked: ${groups.slice(0, 3).map((g) => `${g.title} (${g.count})`).join('; ')}. ${marked.size} were marked.`, {
      hint: `${groups[0]?.remediation ?? ''} Then Retry step: only the mailboxes not yet marked are changed.`,
      details: { failures: groups },
    });
  }
  env.ctx.logger.info({ selected: rows.length, marked: marked.size }, 'mailboxes marked to sync from this organization only');
  return { detail: stepDetail(`marked ${marked.size} of ${mailboxes(rows.length)} to sync items with Exchange from this organization only`), wrote: true, changed: false };
}

export const markPrimaryOrgStep: RunbookStep = { id: 'mark-primary-org', check, apply };
