import { EmailRouterAccessApproval as A, MailboxTestStatus as T, StateCode } from '../../../jobs/crm-values.ts';
import { odataGuid } from '../../../jobs/mailbox-filter.ts';
import type { Verification } from '../../../jobs/cert-types.ts';
import type { Progress } from '../../../jobs/job-types.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { MAILBOX_SET, selectedMailboxColumns, selectedMailboxSchema, type SelectedMailbox } from '../mailboxes/selection.ts';
import { testAndEnable } from '../mailboxes/test.ts';

export type VerifySetting = 'all' | number;

export interface VerificationSet {
  mode: 'sample' | 'all';
  rows: SelectedMailbox[];
}

const active = `statecode eq ${StateCode.Active}`;
const approved = `emailrouteraccessapproval eq ${A.Approved}`;
const lastTestSucceeded = `incomingemailstatus eq ${T.Success} and outgoingemailstatus eq ${T.Success}`;

/**
 * The $filter of the verification set: active approved mailboxes, and for a sample only those
 * whose last test succeeded (so a failure after the rotation is the rotation's). Built from
 * constants only: no input reaches it.
 */
export function verificationFilter(mode: VerificationSet['mode']): string {
  return mode === 'all' ? `${active} and ${approved}` : `${active} and ${approved} and ${lastTestSucceeded}`;
}

/**
 * The mailboxes that verify a rotation (CERT_VERIFY_MAILBOXES): a number = the first N by
 * mailboxid (a stable key, so a resumed run tests the same ones as long as they still qualify),
 * `all` = every active approved mailbox.
 */
export async function selectVerificationSet(ctx: JobContext, setting: VerifySetting): Promise<VerificationSet> {
  const mode = setting === 'all' ? 'all' : 'sample';
  const rows: SelectedMailbox[] = [];
  const seen = new Set<string>();
  const pages = ctx.crm.getAll(MAILBOX_SET, {
    select: selectedMailboxColumns,
    filter: verificationFilter(mode),
    schema: selectedMailboxSchema,
    ...(setting === 'all' ? {} : { orderby: 'mailboxid asc', top: setting }),
  });
  for await (const page of pages) {
    for (const row of page) {
      if (seen.has(row.mailboxid)) continue;
      seen.add(row.mailboxid);
      rows.push(row);
    }
  }
  return { mode, rows: setting === 'all' ? rows : rows.slice(0, setting) };
}

/** At most this many mailbox ids are kept for a rollback to test the same mailboxes again (one short $filter). */
export const MAX_REMEMBERED_MAILBOXES = 50;

/**
 * The same mailboxes a rotation verified (ids from its journal), still active and approved: a
 * rollback tests them again, so the ones the failed rotation broke are shown working (or not).
 */
export async function selectMailboxesById(ctx: JobContext, ids: readonly string[]): Promise<VerificationSet> {
  const rows: SelectedMailbox[] = [];
  if (ids.length === 0) return { mode: 'sample', rows };
  const byId = ids.slice(0, MAX_REMEMBERED_MAILBOXES).map((id) => `mailboxid eq ${odataGuid(id)}`).join(' or ');
  for await (const page of ctx.crm.getAll(MAILBOX_SET, { select: selectedMailboxColumns, filter: `${active} and ${approved} and (${byId})`, schema: selectedMailboxSchema })) {
    for (const row of page) if (!rows.some((r) => r.mailboxid === row.mailboxid)) rows.push(row);
  }
  return { mode: 'sample', rows };
}

/** Passed: every mailbox of the set tested successfully (a failure or a missing result fails it). */
export function verificationPassed(verification: Verification): boolean {
  return verification.failed === 0 && verification.noResult === 0;
}

const phaseText: Readonly<Record<Progress['phase'], string>> = {
  reading: 'reading',
  approving: 'approving',
  scheduling: 'scheduling Test & Enable',
  waiting: 'waiting for results',
  collecting: 'reading the alerts',
  step: 'working',
};

/** Test & Enable of the verification set, with the mailbox test machinery; progress goes to `onProgress`. */
export async function verifyMailboxes(ctx: JobContext, rows: readonly SelectedMailbox[], onProgress: (text: string) => void): Promise<Verification> {
  const outcome = await testAndEnable(rows, {
    ...ctx,
    report: (p) => onProgress(`${phaseText[p.phase]}: ${p.done} of ${p.total}${p.counts ? ` (${Object.entries(p.counts).map(([k, v]) => `${v} ${k}`).join(', ')})` : ''}`),
  });
  return {
    selected: outcome.selected,
    succeeded: outcome.succeeded,
    failed: outcome.failed,
    noResult: outcome.noResult,
    failures: outcome.failures,
  };
}

/** One line for the verify step. */
export function describeVerification(v: Verification): string {
  if (verificationPassed(v)) return `${v.succeeded} of ${v.selected} mailboxes passed Test & Enable`;
  const parts = [`${v.failed} of ${v.selected} mailboxes failed Test & Enable`];
  if (v.noResult > 0) parts.push(`${v.noResult} gave no result in time`);
  const top = v.failures[0];
  if (top) parts.push(`most: ${top.title}`);
  return parts.join('; ');
}
