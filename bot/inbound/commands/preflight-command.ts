import type { ActivityRequest } from '../../bot-services.ts';
import { preflightCheckingCard } from '../../cards/runbook/preflight-card.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

/** `preflight`: authorize (operators) → "Checking…" card → signed, read-only preflight job (the checks arrive via the relay). */
export async function handlePreflightCommand(req: ActivityRequest): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);
  await startRun(req, {
    kind: 'preflight',
    firstCard: (run) => preflightCheckingCard(run),
    job: (run) => ({ type: 'preflight', runId: run.runId, deployment: run.deployment, requestedBy: req.from.aadObjectId }),
  });
}
