import { z } from 'zod';
import { EmailRouterAccessApproval as A, MailboxTestStatus as T, StateCode } from '../../../jobs/crm-values.ts';
import type { PayloadOf, StatusResult } from '../../../jobs/job-types.ts';
import { checkEwsAccess } from '../../adapters/exchange/ews.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { MAILBOX_SET, guidSchema, optionalIntSchema } from './selection.ts';

const statusRowSchema = z.object({
  mailboxid: guidSchema,
  emailaddress: z.string().nullable().optional(),
  emailrouteraccessapproval: optionalIntSchema,
  incomingemailstatus: optionalIntSchema,
  outgoingemailstatus: optionalIntSchema,
  actstatus: optionalIntSchema,
});

/**
 * WhoAmI (can the agent reach and authenticate to CRM), counts over all active mailboxes, and EWS
 * access in Exchange Online for them (Get-EwsAccess: whether Exchange accepts CRM's sync at all).
 */
export async function mailboxStatus(_payload: PayloadOf<'status'>, ctx: JobContext): Promise<StatusResult> {
  const me = await ctx.crm.whoAmI();
  const approval = { empty: 0, approved: 0, pending: 0, rejected: 0 };
  const test = { success: 0, failure: 0, notRun: 0 };
  let total = 0;
  const addresses = new Set<string>();
  for await (const page of ctx.crm.getAll(MAILBOX_SET, {
    select: ['mailboxid', 'emailaddress', 'emailrouteraccessapproval', 'incomingemailstatus', 'outgoingemailstatus', 'actstatus'],
    filter: `statecode eq ${StateCode.Active}`,
    schema: statusRowSchema,
  })) {
    for (const row of page) {
      total += 1;
      if (row.emailaddress) addresses.add(row.emailaddress.toLowerCase());
      switch (row.emailrouteraccessapproval) {
        case A.Approved:
          approval.approved += 1;
          break;
        case A.PendingApproval:
          approval.pending += 1;
          break;
        case A.Rejected:
          approval.rejected += 1;
          break;
        default:
          approval.empty += 1;
      }
      if (row.incomingemailstatus === T.Success && row.outgoingemailstatus === T.Success) test.success += 1;
      else if ([row.incomingemailstatus, row.outgoingemailstatus, row.actstatus].includes(T.Failure)) test.failure += 1;
      else test.notRun += 1;
    }
    ctx.report({ phase: 'reading', done: total, total });
  }
  // Exchange Online's EWS policy decides whether any of this can sync (an agent without its PowerShell runner cannot say).
  const ews = ctx.certs ? await checkEwsAccess(ctx, addresses) : undefined;
  return { type: 'status', total, approval, test, crmUser: me.UserId.slice(0, 64), ...(ews ? { ews } : {}) };
}
