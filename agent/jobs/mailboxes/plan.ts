import { EmailRouterAccessApproval } from '../../../jobs/crm-values.ts';
import type { PayloadOf, PlanResult } from '../../../jobs/job-types.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { readSelection } from './selection.ts';

/** Read-only: what a filter matches, how many would change, and a sample of addresses. */
export async function planMailboxes(payload: PayloadOf<'plan'>, ctx: JobContext): Promise<PlanResult> {
  const rows = await readSelection(ctx.crm, payload.filter, (done) => ctx.report({ phase: 'reading', done, total: done }));
  const toChange =
    payload.action === 'approve' ? rows.filter((r) => r.emailrouteraccessapproval !== EmailRouterAccessApproval.Approved) : rows;
  return {
    type: 'plan',
    action: payload.action,
    matched: rows.length,
    toChange: toChange.length,
    sample: toChange.slice(0, 10).map((r) => r.emailaddress || r.mailboxid),
  };
}
