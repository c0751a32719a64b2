import { z } from 'zod';
import { toSetupError } from '../core/setup-error.ts';
import { jobPayloadSchema, runIdSchema, type JobPayload } from '../jobs/job-types.ts';
import type { AuthzDecision } from './authorizer.ts';
import { loadRun, type ActivityRequest } from './bot-services.ts';
import { verbs, type AdaptiveCardJson, type Verb } from './cards/card-kit.ts';
import { decidedCard } from './cards/plan-cards.ts';
import { runCard } from './cards/run-cards.ts';
import type { Run } from './run-store.ts';
import { jobTimeoutAt, scheduleTimer } from './run-timers.ts';
import { CARD_LOCK_TTL_MS } from './bot-worker.ts';
import { invokePostPolicy } from './teams-poster.ts';
import { describeError } from './user-facing-error.ts';

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
  try {
    return await decide(req, verb, data);
  } catch (error) {
    // Redis away (the producer connection fails within ~2 s), or a bug: answer the invoke in time
    // with what to do rather than letting Teams show a generic failure.
    req.log.error({ err: error, verb }, 'card action failed');
    return describeError(error);
  }
}

async function decide(req: ActivityRequest, verb: Verb, data: unknown): Promise<CardActionReply> {
  const { runs, authorizer, jobs, timers, now } = req.services;
  const parsed = cardDataSchema.safeParse(data);
  if (!parsed.success) {
    req.log.warn('card action without a valid run id');
    return 'This card is not valid. Run the command again.';
  }
  const runId = parsed.data.runId;
  const log = req.log.child({ runId, verb });
  const run = await loadRun(req.services, runId, log);
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
  let job: JobPayload | undefined;
  if (approving) {
    // Everything that could fail comes before the approval, so a run is never left approved
    // without its job or its start timeout: the job is built and checked against the contract,
    // then the timer is scheduled (it acts only on a run still approved, so early is harmless).
    job = approvedJob(run, req.from.aadObjectId);
    if (!job) {
      log.error({ hasFilter: Boolean(run.filter), hasPlan: Boolean(run.plan) }, 'run record is incomplete: cannot build its job');
      return 'This run cannot be approved: its record is incomplete. Nothing was changed; run the command again.';
    }
    try {
      // If no agent starts the job before it expires, the timer fails the run with what to do.
      await scheduleTimer(timers, log, runId, 'start-timeout', jobTimeoutAt(job.type, now()));
    } catch (error) {
      return `Could not approve: ${describeError(error)} Nothing was changed.`;
    }
  }
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

  if (job) {
    try {
      const { jobId } = await jobs.dispatch(job);
      log.info({ jobId }, 'approved: job enqueued');
    } catch (error) {
      log.error({ err: error }, 'approved, but the job could not be enqueued');
      await runs.transition(runId, ['approved'], 'failed', { error: { code: toSetupError(error).code, message: describeError(error) } });
    }
  } else {
    log.info('rejected');
  }
  return showToAll(req, runId);
}

/** The signed job an approval starts, or undefined when the run's record cannot make a valid one. */
function approvedJob(run: Run, approvedBy: string): JobPayload | undefined {
  if (!run.filter || run.plan?.type !== 'plan' || (run.kind !== 'approve' && run.kind !== 'test')) return undefined;
  const parsed = jobPayloadSchema.safeParse({
    type: run.kind,
    runId: run.runId,
    deployment: run.deployment,
    requestedBy: run.requester.aadObjectId,
    filter: run.filter,
    approvedBy,
    // What the approver saw; the agent refuses a selection that has grown well beyond it.
    plannedCount: run.plan.toChange,
  });
  return parsed.success ? parsed.data : undefined;
}

/** How long a click waits for the run's card lock (the invoke is answered within ~5 s). */
const CLICK_LOCK_WAIT_MS = 1_500;

/**
 * Updates the run's card for everyone (bounded retry: the invoke has ~5 s) and returns it for the
 * clicker. The card is rendered from the run as it is once the card lock is held, so it never
 * overwrites a newer card (the agent may already have started); if a report keeps the lock longer
 * than the click can wait, that report is writing a newer card and this one is not posted.
 */
async function showToAll(req: ActivityRequest, runId: string): Promise<CardActionReply> {
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
