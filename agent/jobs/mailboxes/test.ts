import { z } from 'zod';
import { isSetupError } from '../../../core/setup-error.ts';
import { ActDeliveryMethod, MailboxTestStatus as T } from '../../../jobs/crm-values.ts';
import type { PayloadOf, TestResult } from '../../../jobs/job-types.ts';
import { assertWithinPlan } from './assert-within-plan.ts';
import { FailureGroups } from './failure-groups.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { isKnownCause } from '../../runtime/known-errors.ts';
import { MAILBOX_SET, TRACE_SET, guidSchema, optionalIntSchema, readSelectionWith, selectedMailboxColumns, selectedMailboxSchema, type SelectedMailbox } from './selection.ts';

/** The selection with its ACT delivery method (whether ACT must pass too). */
const testedRowSchema = selectedMailboxSchema.extend({ actdeliverymethod: optionalIntSchema });
const testedColumns = [...selectedMailboxColumns, 'actdeliverymethod'] as const;
import { patchInBatches } from './patch-in-batches.ts';

const optionalDate = z
  .string()
  .nullable()
  .optional()
  .transform((v) => (v ? new Date(v) : null))
  .refine((d) => d === null || !Number.isNaN(d.getTime()), 'is not a date-time');

const polledRowSchema = z.object({
  mailboxid: guidSchema,
  emailaddress: z.string().nullable().optional(),
  testemailconfigurationscheduled: z.boolean().nullable().optional(),
  incomingemailstatus: optionalIntSchema,
  outgoingemailstatus: optionalIntSchema,
  actstatus: optionalIntSchema,
  testmailboxaccesscompletedon: optionalDate,
});
const polledColumns = [
  'mailboxid',
  'emailaddress',
  'testemailconfigurationscheduled',
  'incomingemailstatus',
  'outgoingemailstatus',
  'actstatus',
  'testmailboxaccesscompletedon',
] as const;

const traceRowSchema = z.object({
  tracelogid: guidSchema,
  text: z.string().nullable().optional(),
  _regardingobjectid_value: guidSchema.nullable().optional(),
  modifiedon: optionalDate,
});

/** OData DateTimeOffset literal, whole seconds (CRM's Date header has no finer precision). */
export function odataDateTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Taken off CRM's clock for T0: its `Date` header has whole seconds (truncated) and, behind a load
 * balancer, the server that answers WhoAmI may not be the one that runs the test.
 */
export const CLOCK_MARGIN_MS = 2_000;

const noTraceText = 'The test failed, but CRM recorded or updated no alert for this mailbox since the test started.';
const nothingTestedText =
  'Nothing was tested: neither incoming nor outgoing email of this mailbox is set to Server-Side Synchronization, and CRM recorded no alert.';

/**
 * Test & Enable: schedules the test on every selected mailbox (PATCH testemailconfigurationscheduled
 * = true through $batch), then polls with one paged query per interval until every scheduled mailbox
 * has a result or TEST_TIMEOUT_MS passes, then reads the alerts (trace records) created or updated since T0
 * to explain the failures: CRM keeps one alert per mailbox and problem and updates it when the
 * failure recurs (its `modifiedon` moves, its `createdon` stays at the first occurrence), so the
 * alerts are read by `modifiedon` (d365-contract.md, "Alerts"). T0 is CRM's own clock, read before the first PATCH (the `Date` header of a `WhoAmI`
 * answer), minus CLOCK_MARGIN_MS: a skewed agent clock cannot make old results look new or new
 * ones look old, and a mailbox whose test completes while its batch is still being answered is
 * not missed (a batch answer's Date comes after every PATCH in it was processed).
 */
export async function testMailboxes(payload: PayloadOf<'test'>, ctx: JobContext): Promise<TestResult> {
  const started = ctx.now();
  const rows = await readSelectionWith(ctx.crm, payload.filter, { select: testedColumns, schema: testedRowSchema }, (done) => ctx.report({ phase: 'reading', done, total: done }));
  assertWithinPlan(payload.plannedCount, rows.length);
  // A mailbox whose appointments, contacts and tasks go through server-side sync passes only when ACT does too
  // (CRM shows it failed otherwise, for example "configured with another org").
  const outcome = await testAndEnable(rows, ctx, { requireActFor: new Set(rows.filter((r) => r.actdeliverymethod === ActDeliveryMethod.ServerSideSync).map((r) => r.mailboxid)) });
  const result: TestResult = {
    type: 'test',
    ...outcome,
    crmRequests: ctx.crm.requestCount,
    durationMs: Math.max(0, Math.round(ctx.now() - started)),
  };
  ctx.logger.info({ selected: result.selected, succeeded: result.succeeded, failed: result.failed, noResult: result.noResult }, 'test finished');
  return result;
}

/** What Test & Enable of a set of mailboxes found (the counts of a TestResult). */
export type TestAndEnableOutcome = Pick<TestResult, 'selected' | 'succeeded' | 'failed' | 'noResult' | 'failures'>;

/**
 * The Test & Enable machinery of `testMailboxes` for mailboxes already selected (also used by the
 * certificate rotation's verification step): schedule, poll, explain the failures.
 */
export interface TestAndEnableOptions {
  /**
   * Mailboxes whose appointments, contacts and tasks go through server-side sync (actdeliverymethod
   * 1): they pass only when `actstatus` is Success too (the runbook and the `test` command). Absent:
   * incoming and outgoing decide (the certificate rotation's verification, as the `untested` filter has it).
   */
  requireActFor?: ReadonlySet<string>;
}

const actStatusName = (status: number | null | undefined) => (status === T.Failure ? 'Failure' : status === T.NotRun ? 'Not Run' : String(status ?? 'empty'));

export async function testAndEnable(rows: readonly SelectedMailbox[], ctx: JobContext, options: TestAndEnableOptions = {}): Promise<TestAndEnableOutcome> {
  const { TEST_POLL_INTERVAL_MS: pollMs, TEST_TIMEOUT_MS: timeoutMs } = ctx.settings;
  const addressOf = new Map(rows.map((r) => [r.mailboxid, r.emailaddress || r.mailboxid]));
  const failures = new FailureGroups();

  // ---- schedule ----
  // T0 comes from a request answered before the first PATCH is sent.
  const localT0 = ctx.now();
  const crmNow = rows.length > 0 ? await ctx.crm.serverDate() : undefined;
  if (!crmNow && rows.length > 0) ctx.logger.warn('CRM sent no Date header; using the agent clock for the start of the test');
  const t0 = new Date((crmNow?.getTime() ?? localT0) - CLOCK_MARGIN_MS);
  const waiting = new Set<string>();
  let scheduledDone = 0;
  await patchInBatches(
    ctx,
    rows,
    { testemailconfigurationscheduled: true },
    {
      onOutcome: (outcome) => {
        scheduledDone += 1;
        if (outcome.ok) waiting.add(outcome.target.mailboxid);
        else failures.add(outcome.target.emailaddress || outcome.target.mailboxid, outcome.error ?? 'failed');
        ctx.report({ phase: 'scheduling', done: scheduledDone, total: rows.length, counts: { scheduled: waiting.size, failed: failures.total } });
      },
    },
  );
  const scheduled = waiting.size;

  // ---- wait for results ----
  const succeededIds = new Set<string>();
  /** Failed mailbox id → whether anything was tested at all (incoming or outgoing not "Not Run"). */
  const failedIds = new Map<string, boolean>();
  /** Failed mailbox id → what to say when only ACT failed and CRM left no alert that explains it. */
  const actOnly = new Map<string, string>();
  const deadline = ctx.now() + timeoutMs;
  let pollFailures = 0;
  const pollFilter = `testemailconfigurationscheduled eq true or testmailboxaccesscompletedon ge ${odataDateTime(t0)}`;
  while (waiting.size > 0) {
    const left = deadline - ctx.now();
    if (left <= 0) break;
    await ctx.sleep(Math.min(pollMs, left), ctx.signal);
    try {
      for await (const page of ctx.crm.getAll(MAILBOX_SET, { select: polledColumns, filter: pollFilter, schema: polledRowSchema })) {
        for (const row of page) {
          if (!waiting.has(row.mailboxid)) continue;
          const completed = row.testmailboxaccesscompletedon;
          if (row.testemailconfigurationscheduled === true || !completed || completed < t0) continue;
          waiting.delete(row.mailboxid);
          const mail = row.incomingemailstatus === T.Success && row.outgoingemailstatus === T.Success;
          const act = options.requireActFor?.has(row.mailboxid) !== true || row.actstatus === T.Success;
          if (mail && act) succeededIds.add(row.mailboxid);
          else {
            failedIds.set(row.mailboxid, row.incomingemailstatus !== T.NotRun || row.outgoingemailstatus !== T.NotRun);
            if (mail) actOnly.set(row.mailboxid, `Incoming and outgoing email passed Test & Enable, but appointments, contacts and tasks (ACT, set to Server-Side Synchronization) did not: ACT status ${actStatusName(row.actstatus)}, and CRM recorded no alert that explains it.`);
          }
        }
      }
    } catch (error) {
      // A poll that fails for a passing reason (CRM busy or unreachable after the client's own
      // retries) costs one interval, not the whole run; the deadline still bounds the wait.
      if (!isSetupError(error) || !error.retryable || ctx.signal.aborted) throw error;
      pollFailures += 1;
      ctx.logger.warn({ code: error.code, reason: error.message, pollFailures }, 'poll for Test & Enable results failed; trying again at the next interval');
    }
    ctx.report({
      phase: 'waiting',
      done: scheduled - waiting.size,
      total: scheduled,
      counts: { succeeded: succeededIds.size, failed: failedIds.size + failures.total, waiting: waiting.size },
    });
  }

  // ---- explain the failures ----
  if (failedIds.size > 0) {
    ctx.report({ phase: 'collecting', done: 0, total: failedIds.size });
    const traces = new Map<string, { text: string; at: number }[]>();
    for await (const page of ctx.crm.getAll(TRACE_SET, {
      select: ['tracelogid', 'text', '_regardingobjectid_value', 'modifiedon'],
      filter: `modifiedon ge ${odataDateTime(t0)}`,
      schema: traceRowSchema,
    })) {
      for (const row of page) {
        const regarding = row._regardingobjectid_value;
        if (!regarding || !failedIds.has(regarding) || !row.text) continue;
        const list = traces.get(regarding) ?? [];
        list.push({ text: row.text, at: row.modifiedon?.getTime() ?? 0 });
        traces.set(regarding, list);
      }
    }
    for (const [id, tested] of failedIds) {
      const list = (traces.get(id) ?? []).sort((a, b) => b.at - a.at);
      // The newest alert that names a known cause explains it best; else the newest alert.
      const text = list.find((t) => isKnownCause(t.text))?.text ?? list[0]?.text ?? actOnly.get(id) ?? (tested ? noTraceText : nothingTestedText);
      failures.add(addressOf.get(id) ?? id, text);
    }
  }

  return {
    selected: rows.length,
    succeeded: succeededIds.size,
    failed: failures.total,
    noResult: waiting.size,
    failures: failures.toArray(),
  };
}
