import { readAgentSeen, type ActivityRequest } from '../../bot-services.ts';
import { statusCheckingCard } from '../../cards/mailboxes/status-card.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

/** `status`: authorize → "Checking…" card with the agent's heartbeat → signed status job (counts arrive via the relay). */
export async function handleStatusCommand(req: ActivityRequest): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);

  const seen = await readAgentSeen(req.services);
  await startRun(req, {
    kind: 'status',
    firstCard: (run) => statusCheckingCard(run, seen),
    job: (run) => ({ type: 'status', runId: run.runId, deployment: run.deployment, requestedBy: req.from.aadObjectId }),
  });
}
