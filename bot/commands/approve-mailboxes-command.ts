import type { Command } from '../command-parser.ts';
import type { ActivityRequest } from '../bot-services.ts';
import { planningCard } from '../cards/plan-cards.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

type ApproveMailboxes = Extract<Command, { kind: 'approve-mailboxes' }>;

/** `approve mailboxes [filter]`: authorize → "Planning…" card → signed plan job. The approval comes later, on the card. */
export async function handleApproveMailboxesCommand(req: ActivityRequest, command: ApproveMailboxes): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);

  await startRun(req, {
    kind: 'approve',
    filter: command.filter,
    firstCard: (run) => planningCard(run),
    job: (run) => ({ type: 'plan', runId: run.runId, deployment: run.deployment, requestedBy: req.from.aadObjectId, action: 'approve', filter: command.filter }),
  });
}
