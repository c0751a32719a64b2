import type { MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import { hasMailboxSteps, type RunbookScope } from '../../../jobs/runbook-types.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import { setupPlanningCard } from '../../cards/runbook/setup-plan-card.ts';
import type { Run } from '../../runs/run-model.ts';
import { replyRefusal } from './refuse.ts';
import { startRun } from './start-run.ts';

/**
 * `run setup [--dry-run] [filter]`: authorize (operators) → "Planning…" card → signed, read-only
 * setup-plan job for the whole runbook. The relay turns the plan into the dry-run card, "nothing to
 * change", the blocked card, or the plan card (checklist, then an approver other than the requester).
 */
export async function handleRunSetupCommand(req: ActivityRequest, options: { dryRun: boolean; filter: MailboxFilter }): Promise<void> {
  await startRunbookPlan(req, 'setup', options);
}

/**
 * The common start of the runbook commands: the run's kind is the scope; a dry run is created with
 * `dryRun` (its plan is shown, never approved). The filter goes with the scopes that have mailbox steps.
 */
export async function startRunbookPlan(req: ActivityRequest, scope: RunbookScope, options: { dryRun: boolean; filter?: MailboxFilter }): Promise<Run | undefined> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) {
    await replyRefusal(req, decision.reason);
    return undefined;
  }
  const filter = hasMailboxSteps(scope) ? (options.filter ?? { kind: 'all' as const }) : undefined;
  return startRun(req, {
    kind: scope,
    ...(filter ? { filter } : {}),
    ...(options.dryRun ? { dryRun: true } : {}),
    firstCard: (run) => setupPlanningCard(run),
    job: (run) => ({
      type: 'setup-plan',
      runId: run.runId,
      deployment: run.deployment,
      requestedBy: req.from.aadObjectId,
      scope,
      ...(filter ? { filter } : {}),
    }),
  });
}
