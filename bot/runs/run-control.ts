import type { Logger } from '../../core/logger.ts';
import { toSetupError } from '../../core/setup-error.ts';
import { jobPayloadSchema, type JobPayload } from '../../jobs/job-types.ts';
import { hasMailboxSteps } from '../../jobs/runbook-types.ts';
import { recordAudit } from '../audit-trail.ts';
import type { ActivityRequest } from '../bot-services.ts';
import { CARD_LOCK_TTL_MS } from '../bot-worker.ts';
import { text, type AdaptiveCardJson } from '../cards/common/card-kit.ts';
import { personName } from '../cards/cert/cert-card-parts.ts';
import { currentCertCard } from '../cards/cert/cert-run-card.ts';
import { decidedCard } from '../cards/mailboxes/plan-cards.ts';
import { runCard } from '../cards/mailboxes/run-cards.ts';
import { currentSetupCard } from '../cards/runbook/setup-run-card.ts';
import { refreshCertCard } from '../reports/cert-card-refresh.ts';
import { finalStates, type Run, type RunPatch } from './run-model.ts';
import { isRunbookKind, kindOf } from './run-kinds.ts';
import { jobTimeoutAt, scheduleTimer } from './run-timers.ts';
import { invokePostPolicy } from '../teams-poster.ts';
import { describeError } from '../user-facing-error.ts';

/** What a click or a typed `resume` / `cancel` answers: a card (replaces the clicker's view) or a short message. */
export type CardActionReply = AdaptiveCardJson | string;

/**
 * Resume and cancel of a run: the same server-side functions for a card's buttons (Retry step,
 * Resume, Cancel) and for the typed `resume <run>` / `cancel <run>`. Each reloads nothing itself
 * (the caller passes the run it loaded), re-checks who may by Entra object id, then one
 * compare-and-set decides, so a double click or a second bot instance acts once.
 */

/** The runbook run's job as approved (what the approver saw), as attempt `attempt`. */
export function setupRunJob(run: Run, approvedBy: string, attempt: number, resumedBy: string | undefined): JobPayload | undefined {
  const plan = run.plan;
  if (!isRunbookKind(run.kind) || plan?.type !== 'setup-plan' || plan.blocked || run.dryRun) return undefined;
  const withFilter = hasMailboxSteps(run.kind);
  const parsed = jobPayloadSchema.safeParse({
    type: 'setup-run',
    runId: run.runId,
    deployment: run.deployment,
    requestedBy: run.requester.aadObjectId,
    scope: run.kind,
    ...(withFilter && run.filter ? { filter: run.filter } : {}),
    plannedMailboxes: plan.mailboxes,
    tenantId: plan.tenantId,
    certThumbprint: plan.certThumbprint,
    approvedBy,
    ...(kindOf(run).needsChecklist && run.checklist ? { checklistConfirmedBy: run.checklist.confirmedBy.aadObjectId } : {}),
    attempt,
    ...(resumedBy !== undefined ? { resumedBy } : {}),
  });
  return parsed.success ? parsed.data : undefined;
}

/**
 * The rotation job: what the approver saw (the plan's file and thumbprints), as attempt `attempt`.
 * `approvedBy` is always the second person who approved the plan; `resumedBy` who clicked Resume.
 */
export function rotateJob(run: Run, approvedBy: string, attempt: number, resumedBy: string | undefined): JobPayload | undefined {
  const plan = run.plan;
  if (plan?.type !== 'cert-plan' || plan.blocked) return undefined;
  const parsed = jobPayloadSchema.safeParse({
    type: 'cert-rotate',
    runId: run.runId,
    deployment: run.deployment,
    requestedBy: run.requester.aadObjectId,
    file: plan.file,
    newThumbprint: plan.next.thumbprint,
    oldThumbprint: plan.current?.thumbprint ?? null,
    approvedBy,
    attempt,
    ...(resumedBy !== undefined ? { resumedBy } : {}),
  });
  return parsed.success ? parsed.data : undefined;
}

/**
 * Resume (approvers) of a halted rotation or a halted runbook run ("Retry step"): it runs again as
 * attempt n + 1 (the agent skips the steps its journal records done). The start timeout of the new
 * attempt first, then one compare-and-set moves halted → approved and raises the attempt (refused if
 * another click did it first; a runbook run's cancel key is cleared in the same step), then the job
 * `<runId>-<type>-a<n>`: a double click or a second bot instance starts it once.
 */
export async function resumeRun(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
  const { runs, jobs, timers, authorizer, now } = req.services;
  // Who may, before anything about the run (its kind, its state) is said.
  const allowed = authorizer.canApprove(req.from.aadObjectId);
  if (!allowed.allowed) {
    log.info({ reason: allowed.reason }, 'resume refused');
    return allowed.reason;
  }
  if (!kindOf(run).resumable) {
    return `Run ${run.runId} is a ${run.kind} run: only a halted certificate rotation or set-up run can be resumed.`;
  }
  if (run.state !== 'halted') {
    log.info({ state: run.state }, 'resume of a run that is not halted');
    return currentCard(run);
  }
  if (run.rollbackRunId) {
    log.info({ rollbackRunId: run.rollbackRunId }, 'resume refused: a rollback is waiting for approval');
    return pendingRollbackReply(run);
  }
  const attempt = run.attempt + 1;
  // What the approver approved stays approved by them; the job says who resumed it.
  const approvedBy = run.approval?.decision === 'approved' ? run.approval.decidedBy?.aadObjectId : undefined;
  const job = approvedBy === undefined
    ? undefined
    : kindOf(run).approvedJob === 'cert-rotate'
      ? rotateJob(run, approvedBy, attempt, req.from.aadObjectId)
      : setupRunJob(run, approvedBy, attempt, req.from.aadObjectId);
  if (!job) {
    log.error({ hasPlan: Boolean(run.plan), attempt }, 'run record is incomplete (or too many attempts): cannot build the resumed job');
    return kindOf(run).family === 'cert'
      ? 'This rotation cannot be resumed: its record is incomplete or it was resumed too often. Nothing was changed; roll back or start a new `cert rotate`.'
      : 'This run cannot be resumed: its record is incomplete or it was retried too often. Nothing was changed; cancel it and run the command again.';
  }
  try {
    await scheduleTimer(timers, log, run.runId, 'start-timeout', jobTimeoutAt(job.type, now()), attempt);
  } catch (error) {
    return `Could not resume: ${describeError(error)} Nothing was changed.`;
  }
  const outcome = await runs.resume(run.runId, run.attempt, { resumedBy: req.from });
  if (!outcome.ok) {
    log.info({ outcome }, 'lost the race: the run was resumed, cancelled or rolled back meanwhile');
    if (outcome.reason === 'rollback-pending') {
      const latest = await runs.get(run.runId);
      if (latest) return pendingRollbackReply(latest);
    }
    return showToAll(req, run.runId);
  }
  await recordAudit(req, { kind: 'approval', what: `resume (attempt ${attempt})`, runId: run.runId, outcome: 'resumed' });
  try {
    const { jobId } = await jobs.dispatch(job);
    log.info({ jobId, attempt }, 'resumed: job enqueued');
  } catch (error) {
    log.error({ err: error }, 'resumed, but the job could not be enqueued');
    await runs.transition(run.runId, ['approved'], 'halted', { error: { code: toSetupError(error).code, message: describeError(error) } });
  }
  return showToAll(req, run.runId);
}

/**
 * Cancel (the requester while still an operator, or an approver; checked before anything about the
 * run, even that it has ended, is said):
 * - planning / awaiting-approval (any kind with a plan) → cancelled: nothing ran;
 * - a halted runbook run → cancelled (a `setup` run releases the deployment's certificate-change slot);
 * - an approved or running runbook run: its cancel key is set, so the agent stops before its next
 *   step and reports CANCELLED (the relay then moves the run to cancelled);
 * - a halted rotation: refused (Roll back or Abandon on its card); other running work: refused, with why;
 * - a final run: "already <state>".
 */
export async function cancelRun(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
  const { runs, authorizer } = req.services;
  const member = authorizer.canRunCommands(req.from.aadObjectId);
  if (!member.allowed) {
    log.info({ reason: member.reason }, 'cancel refused: may not run commands');
    return member.reason;
  }
  const allowed = authorizer.canRejectOrWithdraw(req.from.aadObjectId, { requesterAadObjectId: run.requester.aadObjectId });
  if (!allowed.allowed) {
    log.info({ reason: allowed.reason }, 'cancel refused');
    return allowed.reason.replace('may reject it', 'may cancel it');
  }
  if (finalStates.includes(run.state)) return `Run ${run.runId} is already ${run.state}.`;
  const patch: RunPatch = { cancelRequestedBy: req.from };
  const runbook = kindOf(run).cancellable;
  switch (run.state) {
    case 'planning':
    case 'awaiting-approval': {
      const outcome = await runs.transition(run.runId, ['planning', 'awaiting-approval'], 'cancelled', patch);
      if (!outcome.ok) return raced(req, run, log);
      await recordAudit(req, { kind: 'approval', what: 'cancel', runId: run.runId, outcome: `cancelled (was ${outcome.from})` });
      if (kindOf(run).rollsBack && run.parentRunId) {
        // Like a withdrawn rollback: its rotation is plainly halted again (Resume, Roll back).
        const cleared = await runs.clearPendingRollback(run.parentRunId, run.runId);
        if (cleared) await refreshCertCard(req.services, run.parentRunId, log);
      }
      log.info({ from: outcome.from }, 'cancelled');
      return showToAll(req, run.runId);
    }
    case 'halted': {
      if (!runbook) {
        return 'A halted certificate rotation is not cancelled: use Roll back or Abandon on its card (Roll back when it changed CRM\'s registration, Abandon when it did not).';
      }
      const outcome = await runs.transition(run.runId, ['halted'], 'cancelled', patch, { releaseCertActive: run.deployment });
      if (!outcome.ok) return raced(req, run, log);
      await recordAudit(req, { kind: 'approval', what: 'cancel', runId: run.runId, outcome: 'cancelled (was halted; steps done stay done)' });
      log.info('halted run cancelled');
      return showToAll(req, run.runId);
    }
    case 'approved':
    case 'running': {
      if (!runbook) {
        return `Run ${run.runId} (${run.kind}) is ${run.state} and cannot be stopped from Teams: ${kindOf(run).certChange ? 'a certificate change runs to its end, then halts or finishes; Roll back or Abandon it there if needed' : 'it finishes on its own (its card shows the progress)'}.`;
      }
      const outcome = await runs.requestCancel(run.runId, req.from);
      if (!outcome.ok) return raced(req, run, log);
      await recordAudit(req, { kind: 'approval', what: 'cancel', runId: run.runId, outcome: 'cancel requested: stops before its next step' });
      log.info('cancel requested: the agent stops before its next step');
      // The card says "Cancel requested by …: the run stops before its next step".
      return showToAll(req, run.runId);
    }
    default:
      return `Run ${run.runId} is ${run.state}: there is nothing to cancel.`;
  }
}

/** The run moved on between the click and the compare-and-set: show it as it is now. */
async function raced(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
  log.info('lost the race: the run moved on meanwhile');
  const latest = await req.services.runs.get(run.runId);
  if (latest && finalStates.includes(latest.state)) return `Run ${run.runId} is already ${latest.state}.`;
  return showToAll(req, run.runId);
}

/** "A rollback was already requested by X (run Y): waiting for approval". */
export function pendingRollbackReply(run: Run): string {
  return `A rollback of this rotation was already requested by ${personName(run.rollbackRequestedBy) || 'someone'} (run ${run.rollbackRunId ?? ''}) and is waiting for approval on its card. Approve or reject it there; Resume and Roll back come back if it is rejected or expires.`;
}

/** How long a click waits for the run's card lock (the invoke is answered within ~5 s). */
const CLICK_LOCK_WAIT_MS = 1_500;

/**
 * Updates the run's card for everyone (bounded retry: the invoke has ~5 s) and returns it for the
 * clicker. The card is rendered from the run as it is once the card lock is held, so it never
 * overwrites a newer card (the agent may already have started); if a report keeps the lock longer
 * than the click can wait, that report is writing a newer card and this one is not posted.
 */
export async function showToAll(req: ActivityRequest, runId: string): Promise<CardActionReply> {
  const { runs, poster } = req.services;
  const lock = await acquireWithin(req, runId, CLICK_LOCK_WAIT_MS);
  try {
    const run = await runs.get(runId);
    if (!run) return 'This run is unknown or too old.';
    const card = currentCard(run);
    if (!lock) {
      req.log.info({ runId }, 'the card is being written by a report: not updated for everyone by this click');
    } else if (run.cardActivityId) {
      const posted = await poster.updateCard(run.conversation, run.cardActivityId, card, invokePostPolicy);
      if (!posted.ok) req.log.warn({ runId, status: posted.status }, 'could not update the card for everyone');
    }
    return card;
  } finally {
    if (lock) await runs.releaseCardLock(runId, lock);
  }
}

async function acquireWithin(req: ActivityRequest, runId: string, waitMs: number): Promise<string | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const lock = await req.services.runs.acquireCardLock(runId, CARD_LOCK_TTL_MS);
    if (lock || Date.now() >= deadline) return lock;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The card a run shows in its current state, whatever its kind. */
export function currentCard(run: Run): AdaptiveCardJson {
  if (kindOf(run).family === 'runbook') return currentSetupCard(run);
  if (run.state === 'cancelled') {
    // A plan cancelled before its decision (`cancel <run>`): the plan as it was, and who cancelled it.
    const base = kindOf(run).family === 'mailboxes' ? decidedCard(run) : currentCertCard({ ...run, state: run.plan ? 'expired' : 'planning' });
    const body = base.body.filter((el) => !(typeof el['text'] === 'string' && (el['text'].startsWith('Expired:') || el['text'].startsWith('Planning…'))));
    return { ...base, body: [...body, text(`Cancelled by ${personName(run.cancelRequestedBy) || 'someone'}. Nothing was run.`, { color: 'Attention', weight: 'Bolder' })] };
  }
  if (kindOf(run).family === 'cert') return currentCertCard(run);
  switch (run.state) {
    case 'approved':
    case 'rejected':
    case 'expired':
      return decidedCard(run);
    default:
      return runCard(run);
  }
}
