import type { Command } from '../command-parser.ts';
import type { ActivityRequest } from '../bot-services.ts';
import { planningCard } from '../cards/plan-cards.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

type TestMailboxes = Extract<Command, { kind: 'test-mailboxes' }>;

/** `test mailboxes [filter]`: authorize → "Planning…" card → signed plan job; the requester or an approver confirms. */
export async function handleTestMailboxesCommand(req: ActivityRequest, command: TestMailboxes): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);

  await startRun(req, {
    kind: 'test',
    filter: command.filter,
    firstCard: (run) => planningCard(run),
    job: (run) => ({ type: 'plan', runId: run.runId, deployment: run.deployment, requestedBy: req.from.aadObjectId, action: 'test', filter: command.filter }),
  });
}
