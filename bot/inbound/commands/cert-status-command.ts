import type { ActivityRequest } from '../../bot-services.ts';
import { certStatusCheckingCard } from '../../cards/cert/cert-status-card.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

/** `cert status`: authorize → "Checking…" card → signed, read-only cert-status job (the card arrives via the relay). */
export async function handleCertStatusCommand(req: ActivityRequest): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);

  await startRun(req, {
    kind: 'cert-status',
    firstCard: (run) => certStatusCheckingCard(run),
    job: (run) => ({ type: 'cert-status', runId: run.runId, deployment: run.deployment, requestedBy: req.from.aadObjectId }),
  });
}
