import { z } from 'zod';
import { SetupError } from '../../../core/setup-error.ts';
import { EmailServerType, StateCode } from '../../../jobs/crm-values.ts';
import { odataGuid, odataString } from '../../../jobs/mailbox-filter.ts';
import type { StepHandle } from '../runner.ts';
import type { CrmApi } from '../../adapters/crm/client.ts';
import { PROFILE_SET, guidSchema, optionalIntSchema } from '../../jobs/mailboxes/selection.ts';
import type { RunbookEnv, RunbookStep, StepCheck } from '../step.ts';
import { stepDetail } from '../detail.ts';

/**
 * The email-profile step (procedure.md §3): an email server profile named PROFILE_NAME of type
 * Exchange Online (Hybrid) with server-to-server authentication and the PROFILE_* values. None →
 * POST it; one → PATCH only the values that differ; then read it back. Sets `facts.profileId`.
 */

/** Server to Server Authentication (incoming/outgoingcredentialretrieval, d365-contract.md). */
export const CREDENTIAL_RETRIEVAL_S2S = 2;

const serverTypeLabels: Readonly<Record<number, string>> = {
  0: 'Exchange Server',
  1: 'Other (POP3/SMTP)',
  2: 'Exchange Server (Hybrid)',
  3: 'Exchange Online (Hybrid)',
};

const nullableString = z.string().nullable().optional().transform((v) => v ?? null);
const nullableBool = z.boolean().nullable().optional().transform((v) => v ?? null);

export const profileRowSchema = z.object({
  emailserverprofileid: guidSchema,
  name: nullableString,
  description: nullableString,
  servertype: optionalIntSchema,
  usedefaulttenantid: nullableBool,
  exchangeonlinetenantid: nullableString,
  useautodiscover: nullableBool,
  incomingserverlocation: nullableString,
  outgoingserverlocation: nullableString,
  processemailsreceivedafter: nullableString,
  minpollingintervalinminutes: optionalIntSchema,
  moveundeliveredemails: nullableBool,
  incomingcredentialretrieval: optionalIntSchema,
  outgoingcredentialretrieval: optionalIntSchema,
  statecode: optionalIntSchema,
  _ownerid_value: guidSchema.nullable().optional().transform((v) => v ?? null),
});
export type ProfileRow = z.output<typeof profileRowSchema>;
const profileColumns = Object.keys(profileRowSchema.shape);

/** The profiles named exactly `name` (escaped literal; CRM compares names case-insensitively). */
export async function findProfilesByName(crm: CrmApi, name: string): Promise<ProfileRow[]> {
  const rows: ProfileRow[] = [];
  for await (const page of crm.getAll(PROFILE_SET, { select: profileColumns, filter: `name eq ${odataString(name)}`, schema: profileRowSchema })) {
    rows.push(...page);
  }
  return rows;
}

async function readProfile(crm: CrmApi, id: string): Promise<ProfileRow | undefined> {
  for await (const page of crm.getAll(PROFILE_SET, { select: profileColumns, filter: `emailserverprofileid eq ${odataGuid(id)}`, schema: profileRowSchema })) {
    if (page[0]) return page[0];
  }
  return undefined;
}

/** One managed attribute: the value the runbook wants and how to tell whether CRM has it. */
interface Wanted {
  attribute: string;
  value: string | number | boolean | null;
  /** Compares CRM's value with the wanted one (default: strict equality). */
  same?: (actual: unknown) => boolean;
}

const sameGuid = (wanted: string) => (actual: unknown) => typeof actual === 'string' && actual.toLowerCase() === wanted.toLowerCase();
/** CRM keeps date-times to the second. */
const sameInstant = (wanted: string) => (actual: unknown) =>
  typeof actual === 'string' && Math.floor(Date.parse(actual) / 1000) === Math.floor(Date.parse(wanted) / 1000);

/**
 * The values the step manages on an existing profile. "Process email from" only when PROFILE_PROCESS_EMAIL_FROM
 * is set (else the date the profile was created stays); the owner only when PROFILE_OWNER is set.
 */
function managedValues(env: RunbookEnv): Wanted[] {
  const p = env.profile;
  const wanted: Wanted[] = [
    { attribute: 'name', value: p.name },
    { attribute: 'description', value: p.description },
    { attribute: 'servertype', value: EmailServerType.ExchangeOnlineHybrid },
    { attribute: 'usedefaulttenantid', value: p.useDefaultTenantId },
    { attribute: 'useautodiscover', value: p.autodiscover },
    { attribute: 'minpollingintervalinminutes', value: p.minPollingIntervalMinutes },
    { attribute: 'moveundeliveredemails', value: p.moveUndeliveredEmails },
    { attribute: 'incomingcredentialretrieval', value: CREDENTIAL_RETRIEVAL_S2S },
    { attribute: 'outgoingcredentialretrieval', value: CREDENTIAL_RETRIEVAL_S2S },
  ];
  if (!p.useDefaultTenantId && p.tenantId) {
    wanted.push({ attribute: 'exchangeonlinetenantid', value: p.tenantId, same: sameGuid(p.tenantId) });
  }
  if (!p.autodiscover) {
    wanted.push({ attribute: 'incomingserverlocation', value: p.incomingUrl }, { attribute: 'outgoingserverlocation', value: p.outgoingUrl });
  }
  if (p.processEmailsReceivedAfter) {
    wanted.push({ attribute: 'processemailsreceivedafter', value: p.processEmailsReceivedAfter, same: sameInstant(p.processEmailsReceivedAfter) });
  }
  if (p.ownerId) wanted.push({ attribute: '_ownerid_value', value: p.ownerId, same: sameGuid(p.ownerId) });
  return wanted;
}

function differing(row: ProfileRow, wanted: readonly Wanted[]): Wanted[] {
  const values = row as Record<string, unknown>;
  return wanted.filter((w) => {
    const actual = values[w.attribute];
    return w.same ? !w.same(actual) : actual !== w.value;
  });
}

/** The PATCH/POST body of the given values (the owner as a bind). */
function bodyOf(values: readonly Wanted[]): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const w of values) {
    if (w.attribute === '_ownerid_value') body['ownerid@odata.bind'] = `/systemusers(${odataGuid(String(w.value))})`;
    else body[w.attribute] = w.value;
  }
  return body;
}

const label = (attribute: string) => (attribute === '_ownerid_value' ? 'owner' : attribute);

function describeWanted(env: RunbookEnv): string {
  const p = env.profile;
  return [
    serverTypeLabels[EmailServerType.ExchangeOnlineHybrid],
    p.autodiscover ? 'autodiscover' : 'explicit server locations',
    'server-to-server',
    ...(p.useDefaultTenantId ? [] : [`tenant ${p.tenantId ?? '?'}`]),
  ].join(', ');
}

type Found =
  | { kind: 'none' }
  | { kind: 'blocked'; message: string; fix: string }
  | { kind: 'found'; row: ProfileRow; diff: Wanted[] };

async function inspect(env: RunbookEnv): Promise<Found> {
  const p = env.profile;
  if (!p.useDefaultTenantId && !p.tenantId) {
    return { kind: 'blocked', message: 'The profile is to use an explicit tenant ID, but none is configured.', fix: 'Set PROFILE_TENANT_ID on the agent, or let the profile use the default tenant ID.' };
  }
  if (!p.autodiscover && (!p.incomingUrl || !p.outgoingUrl)) {
    return { kind: 'blocked', message: 'Autodiscover is off, but the server locations are not configured.', fix: 'Set PROFILE_INCOMING_URL and PROFILE_OUTGOING_URL on the agent, or turn PROFILE_AUTODISCOVER on.' };
  }
  const rows = await findProfilesByName(env.ctx.crm, p.name);
  const [row, second] = rows;
  if (!row) return { kind: 'none' };
  if (second) {
    return {
      kind: 'blocked',
      message: `${rows.length} email server profiles are named '${p.name}'.`,
      fix: 'Rename or delete the extra profiles in CRM so the name is used once, or set PROFILE_NAME to another name.',
    };
  }
  if (row.servertype !== EmailServerType.ExchangeOnlineHybrid) {
    const type = row.servertype === null ? 'no type' : (serverTypeLabels[row.servertype] ?? `type ${row.servertype}`);
    return {
      kind: 'blocked',
      message: `The email server profile '${row.name ?? p.name}' is of type ${type}, not Exchange Online (Hybrid).`,
      fix: 'Rename that profile in CRM, or set PROFILE_NAME to another name for the runbook\'s profile.',
    };
  }
  if (row.statecode === StateCode.Inactive) {
    return {
      kind: 'blocked',
      message: `The email server profile '${row.name ?? p.name}' is inactive.`,
      fix: 'Activate it in CRM (Settings > Email Configuration > Email Server Profiles), or set PROFILE_NAME to another name for the runbook\'s profile.',
    };
  }
  env.facts.profileId = row.emailserverprofileid;
  return { kind: 'found', row, diff: differing(row, managedValues(env)) };
}

async function check(env: RunbookEnv): Promise<StepCheck> {
  const found = await inspect(env);
  const name = env.profile.name;
  switch (found.kind) {
    case 'blocked':
      return { upToDate: false, detail: stepDetail(`cannot go on: ${found.message}`), blocker: { message: found.message, fix: found.fix } };
    case 'none':
      return { upToDate: false, detail: stepDetail(`would create profile '${name}' (${describeWanted(env)})`) };
    case 'found':
      return found.diff.length === 0
        ? { upToDate: true, detail: stepDetail(`already done: profile '${name}' has every value`) }
        : { upToDate: false, detail: stepDetail(`would update profile '${name}': ${found.diff.map((w) => label(w.attribute)).join(', ')}`) };
  }
}

function readBackError(name: string, diff: readonly Wanted[], cause: string): SetupError {
  return new SetupError('STEP_FAILED', `CRM did not keep the email server profile '${name}' as written: ${cause}${diff.length > 0 ? ` (${diff.map((w) => label(w.attribute)).join(', ')})` : ''}.`, {
    hint: 'Open the profile in CRM (Settings > Email Configuration > Email Server Profiles) and check that a plug-in or a workflow does not change it; then retry the step.',
    details: { profileAttributes: diff.map((w) => label(w.attribute)) },
  });
}

async function apply(env: RunbookEnv, step: Pick<StepHandle, 'update'>) {
  const found = await inspect(env);
  const name = env.profile.name;
  const crm = env.ctx.crm;
  if (found.kind === 'blocked') throw new SetupError('STEP_FAILED', found.message, { hint: found.fix });
  if (found.kind === 'found' && found.diff.length === 0) {
    return { detail: stepDetail(`already done: profile '${name}' has every value`), wrote: false, changed: false };
  }
  const wanted = managedValues(env);
  if (found.kind === 'none') {
    const ownerId = env.profile.ownerId ?? env.facts.crmUserId ?? (await crm.whoAmI()).UserId.toLowerCase();
    env.facts.crmUserId ??= ownerId;
    const processFrom = env.profile.processEmailsReceivedAfter ?? new Date(env.ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const body = bodyOf([...wanted.filter((w) => w.attribute !== '_ownerid_value' && w.attribute !== 'processemailsreceivedafter'),
      { attribute: 'processemailsreceivedafter', value: processFrom },
      { attribute: '_ownerid_value', value: ownerId }]);
    step.update(stepDetail(`creating profile '${name}'`));
    const { id } = await crm.create(PROFILE_SET, body);
    env.facts.profileId = id;
    const row = await readProfile(crm, id);
    if (!row) throw readBackError(name, [], 'the new profile cannot be read back');
    const diff = differing(row, [...wanted, { attribute: '_ownerid_value', value: ownerId, same: sameGuid(ownerId) }]);
    if (diff.length > 0) throw readBackError(name, diff, 'the new profile has other values than were sent');
    env.ctx.logger.info({ profileId: id }, 'email server profile created');
    return { detail: stepDetail(`created profile '${name}' (${describeWanted(env)})`), wrote: true, changed: false, data: { profileId: id } };
  }
  const id = found.row.emailserverprofileid;
  step.update(stepDetail(`updating profile '${name}'`));
  await crm.patch(PROFILE_SET, id, bodyOf(found.diff));
  const row = await readProfile(crm, id);
  if (!row) throw readBackError(name, [], 'the profile cannot be read back');
  const diff = differing(row, found.diff);
  if (diff.length > 0) throw readBackError(name, diff, 'the read-back still shows the old values');
  env.ctx.logger.info({ profileId: id, attributes: found.diff.map((w) => label(w.attribute)) }, 'email server profile updated');
  return { detail: stepDetail(`updated profile '${name}': ${found.diff.map((w) => label(w.attribute)).join(', ')}`), wrote: true, changed: false, data: { profileId: id } };
}

/**
 * The runbook's profile id for the steps after email-profile: `facts.profileId` when an earlier step
 * set it, else the one profile named PROFILE_NAME of type Exchange Online (Hybrid) (a resumed run
 * whose email-profile step was done in an earlier attempt; `configure mailboxes` alone). Sets the
 * fact when found; undefined when there is no such profile (yet).
 */
export async function runbookProfileId(env: RunbookEnv): Promise<string | undefined> {
  if (env.facts.profileId) return env.facts.profileId;
  const rows = (await findProfilesByName(env.ctx.crm, env.profile.name)).filter((r) => r.servertype === EmailServerType.ExchangeOnlineHybrid && r.statecode !== StateCode.Inactive);
  const [row, second] = rows;
  if (!row || second) return undefined;
  env.facts.profileId = row.emailserverprofileid;
  return row.emailserverprofileid;
}

/** The email-profile step (procedure.md §3). */
export const emailProfileStep: RunbookStep = { id: 'email-profile', check, apply };
