import type { ActivityRequest } from '../../bot-services.ts';
import { certPlanningCard } from '../../cards/cert/cert-plan-card.ts';
import type { Run } from '../../runs/run-model.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

/**
 * `cert rotate [file.pfx]`: authorize → "Planning…" card → signed, read-only cert-plan job. The
 * agent reads the PFX from its CERT_DIR and plans; the plan card (relay) needs an approver other
 * than the requester.
 */
export async function handleCertRotateCommand(req: ActivityRequest, file?: string): Promise<void> {
  await startCertRotation(req, file);
}

/**
 * Starts a rotation plan as if `req.from` had typed `cert rotate [file]` (also the rotation-due
 * card's Start rotation button): refuses someone who may not run commands, then posts the planning
 * card in the conversation and queues the plan job. Returns the run, or undefined when refused or
 * it could not start (the person was told).
 */
export async function startCertRotation(req: ActivityRequest, file?: string, options: { runId?: string } = {}): Promise<Run | undefined> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) {
    await replyRefusal(req, decision.reason);
    return undefined;
  }
  return startRun(req, {
    kind: 'cert-rotate',
    ...(options.runId !== undefined ? { runId: options.runId } : {}),
    ...(file !== undefined ? { certFile: file } : {}),
    firstCard: (run) => certPlanningCard(run),
    job: (run) => ({
      type: 'cert-plan',
      runId: run.runId,
      deployment: run.deployment,
      requestedBy: req.from.aadObjectId,
      ...(file !== undefined ? { file } : {}),
    }),
  });
}
