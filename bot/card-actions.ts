import { z } from 'zod';
import { toSetupError, userMessage } from '../core/setup-error.ts';
import { runIdSchema, type JobPayload } from '../jobs/job-types.ts';
import type { AuthzDecision } from './authorizer.ts';
import type { ActivityRequest } from './bot-services.ts';
import { verbs, type AdaptiveCardJson, type Verb } from './cards/card-kit.ts';
import { decidedCard } from './cards/plan-cards.ts';
import { runCard } from './cards/run-cards.ts';
import type { Run } from './run-store.ts';
import { jobTimeoutAt, scheduleTimer } from './run-timers.ts';
import { invokePostPolicy } from './teams-poster.ts';

/** Card data is client-controlled: only the run id is read from it, everything else from Redis. */
const cardDataSchema = z.object({ runId: runIdSchema }).passthrough();

/** What the invoke answers: a card (replaces the clicker's view) or a short message. */
export type CardActionReply = AdaptiveCardJson | string;

/**
 * Approve / Reject (Confirm / Cancel for tests). Reload the run, re-check the clicker's rights by
 * Entra object id, then a compare-and-set decides: the first valid click wins, a second click,
 * a replayed invoke or another bot instance sees the decided card. The job is enqueued with its
 * deterministic id and nothing waits for the work (the invoke is answered within a few seconds).
 */
export async function handleCardAction(req: ActivityRequest, verb: Verb, data: unknown): Promise<CardActionReply> {
  const { runs, authorizer, jobs, timers, now } = req.services;
  const parsed = cardDataSchema.safeParse(data);
  if (!parsed.success) {
    req.log.warn('card action without a valid run id');
    return 'This card is not valid. Run the command again.';
  }
  const runId = parsed.data.runId;
  const log = req.log.child({ runId, verb });
  const run = await runs.get(runId);
  if (!run || (run.kind !== 'approve' && run.kind !== 'test')) {
    log.info('card action for an unknown run');
    return 'This run is unknown or too old (runs are kept 30 days). Run the command again.';
  }

  const allowed: AuthzDecision = run.kind === 'approve'
    ? authorizer.canApprove(req.from.aadObjectId)
    : authorizer.canConfirmTest(req.from.aadObjectId, { requesterAadObjectId: run.requester.aadObjectId });
  if (!allowed.allowed) {
    log.info({ reason: allowed.reason }, 'card action refused');
    return allowed.reason;
  }

  if (run.state !== 'awaiting-approval') {
    log.info({ state: run.state }, 'card action on a run already decided');
    return currentCard(run);
  }

  const decidedAt = new Date(now()).toISOString();
  const approving = verb === verbs.approve;
  const outcome = approving
    ? await runs.transition(runId, ['awaiting-approval'], 'approved', { approval: { decision: 'approved', decidedBy: req.from, decidedAt } }, { refuseIfExpired: true })
    : await runs.transition(runId, ['awaiting-approval'], 'rejected', { approval: { decision: 'rejected', decidedBy: req.from, decidedAt } });

  if (!outcome.ok) {
    if (outcome.reason === 'expired') {
      const expired = await runs.transition(runId, ['awaiting-approval'], 'expired', { approval: { decision: 'expired', decidedAt } });
      log.info({ moved: expired.ok }, 'approval expired');
    } else {
      log.info({ outcome }, 'lost the race: run already decided');
    }
    return showToAll(req, runId);
  }

  if (approving) {
    const filter = run.filter;
    if (!filter) throw new Error(`run ${runId} has no filter`);
    const payload: JobPayload = {
      type: run.kind,
      runId,
      deployment: run.deployment,
      requestedBy: run.requester.aadObjectId,
      filter,
      approvedBy: req.from.aadObjectId,
      // What the approver saw; the agent refuses a selection that has grown well beyond it.
      plannedCount: run.plan?.toChange ?? 0,
    };
    try {
      const signedAt = now();
      const { jobId } = await jobs.dispatch(payload);
      log.info({ jobId }, 'approved: job enqueued');
      // If no agent starts the job before it expires, the timer fails the run with what to do.
      await scheduleTimer(timers, log, runId, 'start-timeout', jobTimeoutAt(payload.type, signedAt));
    } catch (error) {
      const e = toSetupError(error);
      log.error({ err: e }, 'approved, but the job could not be enqueued');
      await runs.transition(runId, ['approved'], 'failed', { error: { code: e.code, message: userMessage(e) } });
    }
  } else {
    log.info('rejected');
  }
  return showToAll(req, runId);
}

/** Updates the run's card for everyone (bounded retry: the invoke has ~5 s) and returns it for the clicker. */
async function showToAll(req: ActivityRequest, runId: string): Promise<CardActionReply> {
  const run = await req.services.runs.get(runId);
  if (!run) return 'This run is unknown or too old.';
  const card = currentCard(run);
  if (run.cardActivityId) {
    const posted = await req.services.poster.updateCard(run.conversation, run.cardActivityId, card, invokePostPolicy);
    if (!posted.ok) req.log.warn({ runId, status: posted.status }, 'could not update the card for everyone');
  }
  return card;
}

function currentCard(run: Run): AdaptiveCardJson {
  switch (run.state) {
    case 'approved':
    case 'rejected':
    case 'expired':
      return decidedCard(run);
    default:
      return runCard(run);
  }
}
