import type { MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import type { MailboxAction } from '../../../jobs/job-types.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import { planningCard } from '../../cards/mailboxes/plan-cards.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

/**
 * `approve mailboxes [filter]` and `test mailboxes [filter]`: authorize → "Planning…" card →
 * signed plan job. The decision comes later, on the plan card: an approver approves mailboxes;
 * the requester or an approver confirms a test.
 */
export async function handlePlanMailboxesCommand(req: ActivityRequest, action: MailboxAction, filter: MailboxFilter): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);

  await startRun(req, {
    kind: action,
    filter,
    firstCard: (run) => planningCard(run),
    job: (run) => ({ type: 'plan', runId: run.runId, deployment: run.deployment, requestedBy: req.from.aadObjectId, action, filter }),
  });
}
