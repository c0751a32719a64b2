import { z } from 'zod';
import { SetupError } from '../../../core/setup-error.ts';
import type { MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import { describeFilter, isStableFilter, odataGuid, STABLE_FILTER_RULE } from '../../../jobs/mailbox-filter.ts';
import type { ProfileValues, RunbookScope } from '../../../jobs/runbook-types.ts';
import type { JobContext, RunbookSettings } from '../../runtime/job-context.ts';
import { readSelection } from '../mailboxes/selection.ts';
import type { RunbookEnv, RunbookFacts } from '../../steps/step.ts';

/** What the plan and the run share: the profile the runbook wants, the selection, the step environment. */

const userRowSchema = z.object({ fullname: z.string().nullable().optional(), domainname: z.string().nullable().optional() });

/** A systemuser's name (fullname, else domain name, else its id); its id is a GUID from WhoAmI or PROFILE_OWNER, never input. */
async function userName(ctx: JobContext, id: string): Promise<string> {
  try {
    for await (const page of ctx.crm.getAll('systemusers', { select: ['fullname', 'domainname'], filter: `systemuserid eq ${odataGuid(id)}`, schema: userRowSchema, top: 1 })) {
      const row = page[0];
      if (row) return row.fullname ?? row.domainname ?? id;
    }
  } catch (error) {
    ctx.logger.warn({ err: (error as Error).message }, "the profile owner's name could not be read");
  }
  return id;
}

/** The profile the runbook wants, from the PROFILE_* settings (owner: PROFILE_OWNER, else the agent's CRM user). */
export async function wantedProfile(ctx: JobContext, settings: RunbookSettings, crmUserId: string | undefined): Promise<ProfileValues & { ownerId: string | null }> {
  const ownerId = settings.PROFILE_OWNER ?? null;
  const ownerOf = ownerId ?? crmUserId;
  return {
    name: settings.PROFILE_NAME,
    description: settings.PROFILE_DESCRIPTION,
    useDefaultTenantId: settings.PROFILE_TENANT_ID === undefined,
    tenantId: settings.PROFILE_TENANT_ID ?? null,
    autodiscover: settings.PROFILE_AUTODISCOVER,
    incomingUrl: settings.PROFILE_AUTODISCOVER ? null : (settings.PROFILE_INCOMING_URL ?? null),
    outgoingUrl: settings.PROFILE_AUTODISCOVER ? null : (settings.PROFILE_OUTGOING_URL ?? null),
    processEmailsReceivedAfter: settings.PROFILE_PROCESS_EMAIL_FROM ? new Date(settings.PROFILE_PROCESS_EMAIL_FROM).toISOString() : null,
    minPollingIntervalMinutes: settings.PROFILE_MIN_POLLING_MINUTES,
    moveUndeliveredEmails: settings.PROFILE_MOVE_UNDELIVERABLE,
    owner: ownerOf ? await userName(ctx, ownerOf) : "the agent's CRM user",
    ownerId,
  };
}


export const ALL_MAILBOXES: MailboxFilter = { kind: 'all' };

/**
 * Scope setup refuses a filter on the mailboxes' state (isStableFilter): its later mailbox steps
 * would find the selection emptied by the earlier ones. The smaller scopes run one step and take any filter.
 */
export function requireStableFilter(scope: RunbookScope, filter: MailboxFilter | undefined): void {
  if (scope !== 'setup' || filter === undefined || isStableFilter(filter)) return;
  throw new SetupError('FILTER_INVALID', `run setup cannot work on ${describeFilter(filter)}: ${STABLE_FILTER_RULE}`, {
    hint: 'Run setup with no filter, a domain or addresses; for the other selections use configure mailboxes, approve mailboxes or test mailboxes.',
    retryable: false,
  });
}

/** How many mailboxes the selection matches now (exceedsPlan). */
export async function selectionCount(ctx: JobContext, filter: MailboxFilter): Promise<number> {
  return (await readSelection(ctx.crm, filter)).length;
}

export function runbookEnv(ctx: JobContext, scope: RunbookScope, filter: MailboxFilter, profile: RunbookEnv['profile'], facts: RunbookFacts): RunbookEnv {
  return { ctx, scope, filter, profile, facts };
}
