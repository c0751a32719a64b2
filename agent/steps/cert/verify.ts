import { EmailRouterAccessApproval as A, MailboxTestStatus as T, StateCode } from '../../../jobs/crm-values.ts';
import { odataGuid } from '../../../jobs/mailbox-filter.ts';
import type { Verification } from '../../../jobs/cert-types.ts';
import type { Progress } from '../../../jobs/job-types.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { MAILBOX_SET, selectedMailboxColumns, selectedMailboxSchema, type SelectedMailbox } from '../../jobs/mailboxes/selection.ts';
import { testAndEnable } from '../../jobs/mailboxes/test.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JournalEntry } from '../journal.ts';
import type { CertRunEnv, CertStep } from './common.ts';

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

/** The journal data key of the mailboxes a verification tested (comma-separated ids). */
export const MAILBOX_IDS_KEY = 'mailboxIds';

/** The mailbox ids a verify step recorded in the journal (empty when it recorded none). */
export function verifiedMailboxIds(entry: JournalEntry | undefined): string[] {
  return (entry?.data?.[MAILBOX_IDS_KEY] ?? '').split(',').filter((id) => id.length > 0);
}

/**
 * verify: Test & Enable of the verification set (the mailbox test machinery); the report and
 * whether it passed go to `facts` (nothing to verify: skipped, passed, report null). The mailboxes:
 * `sameAs` (a rollback: the ones the rotation tested), else the ones this run's earlier attempt
 * tested (a resume tests again the mailboxes the failed verification broke: a new selection would
 * skip them, their last test having failed), else a new selection by CERT_VERIFY_MAILBOXES. A
 * remembered set none of which still qualifies is replaced by a new selection. The check (the
 * plan) says how many mailboxes a new selection has (`selection`: the plan's shared read).
 */
export function verifyStep(
  certs: ReadyCerts,
  options: { sameAs?: () => Promise<readonly string[]>; selection?: () => Promise<VerificationSet> } = {},
): CertStep<CertRunEnv> {
  return {
    id: 'verify',
    async check(env) {
      const verification = await (options.selection?.() ?? selectVerificationSet(env.ctx, certs.settings.CERT_VERIFY_MAILBOXES));
      if (verification.rows.length === 0) return { upToDate: false, detail: 'no mailbox qualifies: nothing would be verified (the old key credential would then be kept)' };
      return { upToDate: false, detail: `would Test & Enable ${verification.rows.length} mailboxes${verification.mode === 'sample' ? ' whose last test succeeded' : ''}` };
    },
    async apply(env, step) {
      const { ctx, facts } = env;
      facts.verification = null;
      const sameAs = options.sameAs ? await options.sameAs() : [];
      const remembered = sameAs.length > 0 ? sameAs : verifiedMailboxIds(env.recorded('verify'));
      const again = remembered.length > 0 ? await selectMailboxesById(ctx, remembered) : undefined;
      const set = again && again.rows.length > 0 ? again : await selectVerificationSet(ctx, certs.settings.CERT_VERIFY_MAILBOXES);
      if (set.rows.length === 0) {
        const which = set.mode === 'all' ? 'active approved mailbox' : 'active approved mailbox whose last Test & Enable succeeded';
        facts.passed = true;
        return { state: 'skipped', detail: `nothing verified: there is no ${which}`, wrote: false };
      }
      step.update(`testing ${set.rows.length} mailboxes`);
      const verification = await verifyMailboxes(ctx, set.rows, (text) => step.update(text));
      facts.verification = verification;
      facts.passed = verificationPassed(verification);
      const ids = set.rows.length <= MAX_REMEMBERED_MAILBOXES ? { data: { [MAILBOX_IDS_KEY]: set.rows.map((r) => r.mailboxid).join(',') } } : {};
      return { state: facts.passed ? 'done' : 'failed', detail: describeVerification(verification), wrote: false, ...ids };
    },
  };
}
