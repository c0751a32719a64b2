import { z } from 'zod';
import { SetupError } from '../../../core/setup-error.ts';
import { odataString, toODataFilter, type MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import type { CrmApi } from '../../adapters/crm/client.ts';

export const MAILBOX_SET = 'mailboxes';
export const PROFILE_SET = 'emailserverprofiles';
export const TRACE_SET = 'tracelogs';

const guid = z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/).transform((s) => s.toLowerCase());
/** An option value or status CRM may leave empty. */
const optionalInt = z.number().int().nullable().optional().transform((v) => v ?? null);
const address = z.string().nullable().optional().transform((v) => v ?? '');

/** What the selection reads: id, address and Approve Email state. */
export const selectedMailboxSchema = z.object({
  mailboxid: guid,
  emailaddress: address,
  emailrouteraccessapproval: optionalInt,
});
export type SelectedMailbox = z.output<typeof selectedMailboxSchema>;
export const selectedMailboxColumns = ['mailboxid', 'emailaddress', 'emailrouteraccessapproval'] as const;

const profileRowSchema = z.object({ emailserverprofileid: guid, name: z.string().nullable().optional() });
const profileNameRowSchema = z.object({ name: z.string().nullable().optional() });

/**
 * Resolves a profile's name to its id with an escaped literal
 * (`$filter=name eq '<escaped>'`). None → PROFILE_NOT_FOUND naming the profiles that exist.
 */
export async function resolveProfileId(crm: CrmApi, name: string): Promise<string> {
  const found: string[] = [];
  for await (const page of crm.getAll(PROFILE_SET, {
    select: ['emailserverprofileid', 'name'],
    filter: `name eq ${odataString(name)}`,
    schema: profileRowSchema,
  })) {
    for (const row of page) found.push(row.emailserverprofileid);
  }
  const [first, second] = found;
  if (first !== undefined && second === undefined) return first;
  if (first !== undefined) {
    throw new SetupError('FILTER_INVALID', `${found.length} email server profiles are named "${name}", so the selection is ambiguous.`, {
      hint: 'Rename the profiles in CRM so that each name is used once, then run the command again.',
    });
  }
  const names: string[] = [];
  for await (const page of crm.getAll(PROFILE_SET, { select: ['name'], schema: profileNameRowSchema })) {
    for (const row of page) if (row.name) names.push(row.name);
  }
  names.sort((a, b) => a.localeCompare(b));
  const listed = names.length === 0 ? 'There are no email server profiles in CRM.' : `The profiles are: ${names.slice(0, 20).map((n) => `"${n}"`).join(', ')}${names.length > 20 ? ` and ${names.length - 20} more` : ''}.`;
  throw new SetupError('PROFILE_NOT_FOUND', `There is no email server profile named "${name}". ${listed}`, {
    hint: 'Use one of these names exactly (in double quotes), or create the profile first.',
    details: { profiles: names.slice(0, 20) },
  });
}

/** The $filter for a selection, resolving a profile name first when the filter names one. */
export async function selectionFilter(crm: CrmApi, filter: MailboxFilter): Promise<string> {
  if (filter.kind === 'profile') {
    const profileId = await resolveProfileId(crm, filter.name);
    return toODataFilter(filter, { profileId });
  }
  return toODataFilter(filter);
}

/** Pages the selection; `onPage` sees each page as it arrives (for progress). */
export async function readSelection(
  crm: CrmApi,
  filter: MailboxFilter,
  onPage: (rowsSoFar: number) => void = () => undefined,
): Promise<SelectedMailbox[]> {
  return readSelectionWith(crm, filter, { select: selectedMailboxColumns, schema: selectedMailboxSchema }, onPage);
}

/**
 * The selection with more columns than `readSelection` reads (the runbook's mailbox steps compare
 * the profile, the delivery methods and the test statuses). Same $filter, same de-duplication.
 */
export async function readSelectionWith<T extends { mailboxid: string }>(
  crm: CrmApi,
  filter: MailboxFilter,
  columns: { select: readonly string[]; schema: z.ZodType<T, z.ZodTypeDef, unknown> },
  onPage: (rowsSoFar: number) => void = () => undefined,
): Promise<T[]> {
  const odataFilter = await selectionFilter(crm, filter);
  const rows: T[] = [];
  const seen = new Set<string>();
  for await (const page of crm.getAll(MAILBOX_SET, { select: columns.select, filter: odataFilter, schema: columns.schema })) {
    for (const row of page) {
      // A row can move between pages while others write; count each mailbox once.
      if (seen.has(row.mailboxid)) continue;
      seen.add(row.mailboxid);
      rows.push(row);
    }
    onPage(rows.length);
  }
  return rows;
}

/** What the runbook's mailbox steps read: the selection's columns plus profile, delivery methods and test statuses. */
export const configuredMailboxSchema = selectedMailboxSchema.extend({
  _emailserverprofile_value: guid.nullable().optional().transform((v) => v ?? null),
  incomingemaildeliverymethod: optionalInt,
  outgoingemaildeliverymethod: optionalInt,
  actdeliverymethod: optionalInt,
  incomingemailstatus: optionalInt,
  outgoingemailstatus: optionalInt,
  actstatus: optionalInt,
});
export type ConfiguredMailbox = z.output<typeof configuredMailboxSchema>;
export const configuredMailboxColumns = [
  ...selectedMailboxColumns,
  '_emailserverprofile_value',
  'incomingemaildeliverymethod',
  'outgoingemaildeliverymethod',
  'actdeliverymethod',
  'incomingemailstatus',
  'outgoingemailstatus',
  'actstatus',
] as const;

export { guid as guidSchema, optionalInt as optionalIntSchema, address as addressSchema };
