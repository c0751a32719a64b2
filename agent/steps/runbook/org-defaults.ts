import { z } from 'zod';
import { SetupError } from '../../../core/setup-error.ts';
import { ActDeliveryMethod, IncomingDeliveryMethod, OutgoingDeliveryMethod } from '../../../jobs/crm-values.ts';
import { odataGuid } from '../../../jobs/mailbox-filter.ts';
import type { StepHandle } from '../runner.ts';
import { readEmailDeliveryDefaults, writeEmailDeliveryDefaults, type EmailDeliveryDefaults } from '../../adapters/crm/email-settings-xml.ts';
import { guidSchema, optionalIntSchema } from '../../jobs/mailboxes/selection.ts';
import type { RunbookEnv, RunbookStep, StepCheck } from '../step.ts';
import { runbookProfileId } from './email-profile.ts';
import { stepDetail } from '../detail.ts';

/**
 * The org-defaults step (procedure.md §4): the organization's default email server profile is the
 * runbook's profile, new users and queues get Server-Side Synchronization for incoming, outgoing
 * and ACT (2, 2, 1: ACT is numbered differently), and the connection channel is server-side sync.
 * Only the values that differ are written, then read back.
 */

export const ORGANIZATION_SET = 'organizations';
/** emailconnectionchannel: 0 Server-Side Synchronization, 1 Email Router. */
export const CONNECTION_CHANNEL_SSS = 0;

export const wantedDeliveryDefaults: EmailDeliveryDefaults = {
  incoming: IncomingDeliveryMethod.ServerSideSync,
  outgoing: OutgoingDeliveryMethod.ServerSideSync,
  act: ActDeliveryMethod.ServerSideSync,
};

const organizationRowSchema = z.object({
  organizationid: guidSchema,
  _defaultemailserverprofileid_value: guidSchema.nullable().optional().transform((v) => v ?? null),
  defaultemailsettings: z.string().nullable().optional().transform((v) => v ?? null),
  emailconnectionchannel: optionalIntSchema,
});
type OrganizationRow = z.output<typeof organizationRowSchema>;
const organizationColumns = ['organizationid', '_defaultemailserverprofileid_value', 'defaultemailsettings', 'emailconnectionchannel'];

async function readOrganization(env: RunbookEnv): Promise<OrganizationRow> {
  const rows: OrganizationRow[] = [];
  for await (const page of env.ctx.crm.getAll(ORGANIZATION_SET, { select: organizationColumns, schema: organizationRowSchema })) rows.push(...page);
  const [row, second] = rows;
  if (!row || second) {
    throw new SetupError('CRM_RESPONSE_INVALID', `CRM returned ${rows.length} organization rows; the agent expects exactly one.`, {
      hint: "Check that CRM_URL is the organization's URL and that the agent's CRM account can read the organization.",
    });
  }
  return row;
}

type Part = 'profile' | 'delivery' | 'channel';

const partText: Readonly<Record<Part, string>> = {
  profile: 'the default profile',
  delivery: 'server-side sync for incoming, outgoing and ACT',
  channel: 'server-side sync as the connection channel',
};

function sameDelivery(xml: string | null): boolean {
  const found = readEmailDeliveryDefaults(xml);
  return found.incoming === wantedDeliveryDefaults.incoming && found.outgoing === wantedDeliveryDefaults.outgoing && found.act === wantedDeliveryDefaults.act;
}

/** The parts that differ; `profileId` undefined: the profile does not exist yet (a plan before email-profile). */
function differing(row: OrganizationRow, profileId: string | undefined): Part[] {
  const parts: Part[] = [];
  if (profileId === undefined || row._defaultemailserverprofileid_value !== profileId.toLowerCase()) parts.push('profile');
  if (!sameDelivery(row.defaultemailsettings)) parts.push('delivery');
  if (row.emailconnectionchannel !== CONNECTION_CHANNEL_SSS) parts.push('channel');
  return parts;
}

function describe(parts: readonly Part[], env: RunbookEnv): string {
  return parts
    .map((p) =>
      p === 'profile'
        ? `the default profile to '${env.profile.name}'${env.facts.profileId ? '' : ' (created by the email-profile step)'}`
        : partText[p],
    )
    .join(', ');
}

async function check(env: RunbookEnv): Promise<StepCheck> {
  const row = await readOrganization(env);
  const parts = differing(row, await runbookProfileId(env));
  return parts.length === 0
    ? { upToDate: true, detail: stepDetail(`already done: default profile '${env.profile.name}', server-side sync for incoming, outgoing and ACT, connection channel server-side sync`) }
    : { upToDate: false, detail: stepDetail(`would set ${describe(parts, env)}`) };
}

async function apply(env: RunbookEnv, step: Pick<StepHandle, 'update'>) {
  const profileId = await runbookProfileId(env);
  if (!profileId) {
    throw new SetupError('STEP_FAILED', `The email server profile '${env.profile.name}' is not known to this run, so it cannot be made the default.`, {
      hint: 'Run the email-profile step first (`@setup profile create`, or resume the run from that step).',
    });
  }
  const row = await readOrganization(env);
  const parts = differing(row, profileId);
  if (parts.length === 0) {
    return { detail: stepDetail(`already done: default profile '${env.profile.name}', server-side sync for incoming, outgoing and ACT`), wrote: false, changed: false };
  }
  const body: Record<string, unknown> = {};
  if (parts.includes('profile')) body['defaultemailserverprofileid@odata.bind'] = `/emailserverprofiles(${odataGuid(profileId)})`;
  if (parts.includes('delivery')) body.defaultemailsettings = writeEmailDeliveryDefaults(row.defaultemailsettings, wantedDeliveryDefaults);
  if (parts.includes('channel')) body.emailconnectionchannel = CONNECTION_CHANNEL_SSS;
  step.update(stepDetail(`setting ${describe(parts, env)}`));
  await env.ctx.crm.patch(ORGANIZATION_SET, row.organizationid, body);
  const after = await readOrganization(env);
  const still = differing(after, profileId);
  if (still.length > 0) {
    throw new SetupError('STEP_FAILED', `CRM did not keep the organization's email settings: ${still.map((p) => partText[p]).join(', ')} still differ after the update.`, {
      hint: 'Open Settings > Email Configuration > Email Configuration Settings in CRM and check that a plug-in or another administrator does not change them; then retry the step.',
    });
  }
  env.ctx.logger.info({ parts }, 'organization email defaults set');
  return { detail: stepDetail(`set ${describe(parts, env)}`), wrote: true, changed: false };
}

/** The org-defaults step (procedure.md §4). */
export const orgDefaultsStep: RunbookStep = { id: 'org-defaults', check, apply };
