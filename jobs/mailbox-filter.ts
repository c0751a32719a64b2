import { z } from 'zod';
import { EmailRouterAccessApproval as A, MailboxTestStatus as T, StateCode } from './crm-values.ts';

/**
 * Which mailboxes a command works on. The bot parses what a person typed into this structure; the
 * agent turns it into an OData $filter with `toODataFilter`. Raw text never crosses: every value
 * is validated here and escaped as a string literal there.
 */
export const emailAddressSchema = z
  .string()
  .max(254)
  .regex(/^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, 'is not an email address');

export const domainSchema = z
  .string()
  .max(253)
  .regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, 'is not a domain name');

export const profileNameSchema = z
  .string()
  .min(1)
  .max(100)
  .refine((name) => !/["\p{Cc}]/u.test(name), 'may not contain double quotes or control characters');

export const MAX_FILTER_ADDRESSES = 50;

export const mailboxFilterSchema = z.discriminatedUnion('kind', [
  /** Not yet approved: Empty or Pending Approval. */
  z.object({ kind: z.literal('pending') }),
  /** Approved, but the last Test & Enable did not succeed (not run, or failed). */
  z.object({ kind: z.literal('untested') }),
  /** The last Test & Enable failed for incoming, outgoing or ACT. */
  z.object({ kind: z.literal('failed') }),
  z.object({ kind: z.literal('all') }),
  z.object({ kind: z.literal('domain'), domain: domainSchema }),
  z.object({ kind: z.literal('profile'), name: profileNameSchema }),
  z.object({ kind: z.literal('addresses'), addresses: z.array(emailAddressSchema).min(1).max(MAX_FILTER_ADDRESSES) }),
]);
export type MailboxFilter = z.infer<typeof mailboxFilterSchema>;

/**
 * Whether a filter selects the same mailboxes before and after the runbook's mailbox steps change
 * them. `run setup` re-reads its selection at each mailbox step: `pending` is empty after
 * approve-email, `profile "Old"` after configure-mailboxes, `untested`/`failed` change with Test &
 * Enable, so the later steps would silently do nothing. Scope setup accepts only these.
 */
export function isStableFilter(filter: MailboxFilter): boolean {
  return filter.kind === 'all' || filter.kind === 'domain' || filter.kind === 'addresses';
}

/** Why `run setup` refuses a filter that is not stable (the bot and the agent say the same). */
export const STABLE_FILTER_RULE =
  'run setup works on all mailboxes, a domain or listed addresses only: it approves, configures and tests the mailboxes in turn, so a filter on their state (pending, untested, failed, profile) would select nothing by the later steps.';

/** OData string literal: single-quoted, a quote inside doubled (contract: 'O''Brien'). */
export function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

const guidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A GUID as an OData literal; refuses anything that is not exactly a GUID. */
export function odataGuid(value: string): string {
  if (!guidPattern.test(value)) throw new Error(`not a GUID: ${JSON.stringify(value)}`);
  return value.toLowerCase();
}

export interface FilterContext {
  /** The profile's id, resolved by the agent from the name before building the filter. */
  profileId?: string;
}

/**
 * Builds the $filter for a mailbox selection. Only active mailboxes are ever selected. Every value
 * that came from a person goes through `odataString` or `odataGuid`.
 */
export function toODataFilter(input: MailboxFilter, context: FilterContext = {}): string {
  const filter = mailboxFilterSchema.parse(input);
  const active = `statecode eq ${StateCode.Active}`;
  const clause = (() => {
    switch (filter.kind) {
      case 'pending':
        return `(emailrouteraccessapproval eq ${A.Empty} or emailrouteraccessapproval eq ${A.PendingApproval})`;
      case 'untested':
        return `emailrouteraccessapproval eq ${A.Approved} and (incomingemailstatus ne ${T.Success} or outgoingemailstatus ne ${T.Success})`;
      case 'failed':
        return `(incomingemailstatus eq ${T.Failure} or outgoingemailstatus eq ${T.Failure} or actstatus eq ${T.Failure})`;
      case 'all':
        return undefined;
      case 'domain':
        return `endswith(emailaddress,${odataString(`@${filter.domain}`)})`;
      case 'profile':
        if (!context.profileId) throw new Error('profile filter needs the resolved profileId');
        return `_emailserverprofile_value eq ${odataGuid(context.profileId)}`;
      case 'addresses':
        return `(${filter.addresses.map((a) => `emailaddress eq ${odataString(a)}`).join(' or ')})`;
    }
  })();
  return clause ? `${active} and ${clause}` : active;
}

/** How a filter reads on a card. */
export function describeFilter(filter: MailboxFilter): string {
  switch (filter.kind) {
    case 'pending':
      return 'mailboxes not yet approved (Empty or Pending Approval)';
    case 'untested':
      return 'approved mailboxes whose last Test & Enable did not succeed';
    case 'failed':
      return 'mailboxes whose last Test & Enable failed';
    case 'all':
      return 'all active mailboxes';
    case 'domain':
      return `mailboxes whose email ends with @${filter.domain}`;
    case 'profile':
      return `mailboxes using the email server profile "${filter.name}"`;
    case 'addresses':
      return filter.addresses.length === 1
        ? `the mailbox ${filter.addresses[0] ?? ''}`
        : `${filter.addresses.length} listed mailboxes`;
  }
}
