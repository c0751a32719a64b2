import { z } from 'zod';
import type { Logger } from '../core/logger.ts';
import { toSetupError } from '../core/setup-error.ts';
import { newRunId } from '../jobs/job-options.ts';
import { jobPayloadSchema, runIdSchema, type JobPayload } from '../jobs/job-types.ts';
import type { AuthzDecision } from './authorizer.ts';
import { loadRun, type ActivityRequest } from './bot-services.ts';
import { verbs, type AdaptiveCardJson, type Verb } from './cards/card-kit.ts';
import { certRollbackCard } from './cards/cert-rollback-card.ts';
import { personName } from './cards/cert-card-parts.ts';
import { currentCertCard, oldThumbprintOf, registrationTouched } from './cards/cert-run-card.ts';
import { refreshCertCard } from './cert-card-refresh.ts';
import { decidedCard } from './cards/plan-cards.ts';
import { runCard } from './cards/run-cards.ts';
import { finalStates, type Run, type RunPatch, type RunState } from './run-store.ts';
import { jobTimeoutAt, scheduleTimer } from './run-timers.ts';
import { CARD_LOCK_TTL_MS } from './bot-worker.ts';
import { invokePostPolicy } from './teams-poster.ts';
import { describeError } from './user-facing-error.ts';

/** Card data is client-controlled: only the run id is read from it, everything else from Redis. */
const cardDataSchema = z.object({ runId: runIdSchema }).passthrough();

/** What the invoke answers: a card (replaces the clicker's view) or a short message. */
export type CardActionReply = AdaptiveCardJson | string;

/** The verbs handleCardAction answers (cert.start-rotation is the certificate watch's, bot/cert-watch.ts). */
export type RunVerb = typeof verbs.approve | typeof verbs.reject | typeof verbs.resume | typeof verbs.rollback | typeof verbs.abandon;

/**
 * Approve / Reject (Confirm / Cancel for tests), and for a halted rotation Resume / Roll back. Reload the run, re-check the clicker's rights by
 * Entra object id, then a compare-and-set decides: the first valid click wins, a second click,
 * a replayed invoke or another bot instance sees the decided card. The job is enqueued with its
 * deterministic id and nothing waits for the work (the invoke is answered within a few seconds).
 */
export async function handleCardAction(req: ActivityRequest, verb: Verb, data: unknown): Promise<CardActionReply> {
  try {
    return await act(req, verb, data);
  } catch (error) {
    // Redis away (the producer connection fails within ~2 s), or a bug: answer the invoke in time
    // with what to do rather than letting Teams show a generic failure.
    req.log.error({ err: error, verb }, 'card action failed');
    return describeError(error);
  }
}

const UNKNOWN_RUN = 'This run is unknown or too old (runs are kept 30 days). Run the command again.';

async function act(req: ActivityRequest, verb: Verb, data: unknown): Promise<CardActionReply> {
  const parsed = cardDataSchema.safeParse(data);
  if (!parsed.success) {
    req.log.warn('card action without a valid run id');
    return 'This card is not valid. Run the command again.';
  }
  const runId = parsed.data.runId;
  const log = req.log.child({ runId, verb });
  const run = await loadRun(req.services, runId, log);
  if (!run) {
    log.info('card action for an unknown run');
    return UNKNOWN_RUN;
  }
  switch (verb) {
    case verbs.approve:
    case verbs.reject:
      if (run.kind !== 'approve' && run.kind !== 'test' && run.kind !== 'cert-rotate' && run.kind !== 'cert-rollback') break;
      return decide(req, verb, run, log);
    case verbs.resume:
      if (run.kind !== 'cert-rotate') break;
      return resume(req, run, log);
    case verbs.rollback:
      if (run.kind !== 'cert-rotate') break;
      return requestRollback(req, run, log);
    case verbs.abandon:
      if (run.kind !== 'cert-rotate') break;
      return abandon(req, run, log);
    default:
      break;
  }
  log.info({ kind: run.kind }, 'card action that does not fit the run');
  return UNKNOWN_RUN;
}

/** Who may approve or reject: approvers for mailboxes, requester or approver for tests, two people for certificates. */
function decisionRights(req: ActivityRequest, run: Run, approving: boolean): AuthzDecision {
  const { authorizer } = req.services;
  const context = { requesterAadObjectId: run.requester.aadObjectId };
  switch (run.kind) {
    case 'approve':
      return authorizer.canApprove(req.from.aadObjectId);
    case 'test':
      return authorizer.canConfirmTest(req.from.aadObjectId, context);
    default:
      return approving
        ? authorizer.canApproveAsSecondPerson(req.from.aadObjectId, { ...context, what: run.kind === 'cert-rollback' ? 'rollback' : 'rotation' })
        : authorizer.canRejectOrWithdraw(req.from.aadObjectId, context);
  }
}

async function decide(req: ActivityRequest, verb: Verb, run: Run, log: Logger): Promise<CardActionReply> {
  const { runs, jobs, timers, now } = req.services;
  const runId = run.runId;
  const allowed = decisionRights(req, run, verb === verbs.approve);
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
  if (approving && (run.kind === 'cert-rotate' || run.kind === 'cert-rollback')) {
    // Refused before anything is scheduled (a start timeout scheduled now would keep its job id and
    // fire at the wrong time once the plan is approved later); the approval CAS checks it again.
    const busy = await otherCertChange(req, run);
    if (busy) {
      log.info({ holder: busy.runId, holderState: busy.state }, 'approval refused: another certificate change is in progress');
      return busyReply(busy.runId, busy.state);
    }
  }
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
      await scheduleTimer(timers, log, runId, 'start-timeout', jobTimeoutAt(job.type, now()), run.attempt);
    } catch (error) {
      return `Could not approve: ${describeError(error)} Nothing was changed.`;
    }
  }
  const isCertChange = run.kind === 'cert-rotate' || run.kind === 'cert-rollback';
  const approval: RunPatch = { approval: { decision: 'approved', decidedBy: req.from, decidedAt } };
  const outcome = approving
    ? isCertChange
      // One certificate change at a time: the approval claims the deployment's cert-active key in
      // the same step (a rollback takes it over from its rotation, which becomes superseded).
      ? await runs.approveCert(runId, run.deployment, run.kind === 'cert-rollback' ? run.parentRunId : undefined, approval)
      : await runs.transition(runId, ['awaiting-approval'], 'approved', approval, { refuseIfExpired: true })
    : await runs.transition(runId, ['awaiting-approval'], 'rejected', { approval: { decision: 'rejected', decidedBy: req.from, decidedAt } });

  if (!outcome.ok) {
    if (outcome.reason === 'busy') {
      log.info({ holder: outcome.holder, holderState: outcome.holderState }, 'approval refused: another certificate change is in progress');
      return busyReply(outcome.holder, outcome.holderState);
    }
    if (outcome.reason === 'parent') {
      log.warn({ parentState: outcome.parentState }, 'rollback approval refused: its rotation is not halted with this rollback pending');
      return `This rollback cannot be approved: the rotation ${run.parentRunId ?? ''} is no longer waiting for it (${outcome.parentState || 'unknown'}). Nothing was changed.`;
    }
    if (outcome.reason === 'expired') {
      const expired = await runs.transition(runId, ['awaiting-approval'], 'expired', { approval: { decision: 'expired', decidedAt } });
      log.info({ moved: expired.ok }, 'approval expired');
      if (expired.ok) await rollbackSettled(req, run, log);
    } else {
      log.info({ outcome }, 'lost the race: run already decided');
    }
    return showToAll(req, runId);
  }

  if (job) {
    let started = true;
    try {
      const { jobId } = await jobs.dispatch(job);
      log.info({ jobId }, 'approved: job enqueued');
    } catch (error) {
      started = false;
      log.error({ err: error }, 'approved, but the job could not be enqueued');
      const patch: RunPatch = { error: { code: toSetupError(error).code, message: describeError(error) } };
      if (run.kind === 'cert-rollback' && run.parentRunId) {
        // The rotation is halted again (Resume, Roll back) and holds the cert-active key again.
        await runs.rollbackNotStarted(runId, run.parentRunId, run.deployment, patch);
      } else {
        await runs.transition(runId, ['approved'], 'failed', patch, { releaseCertActive: run.deployment });
      }
    }
    // The rotation's card: superseded by this rollback, or halted again when it could not start.
    if (run.kind === 'cert-rollback' && run.parentRunId) await refreshCertCard(req.services, run.parentRunId, log);
    if (!started) log.info('the approved job did not start');
  } else {
    log.info('rejected');
    await rollbackSettled(req, run, log);
  }
  return showToAll(req, runId);
}

/** The deployment's certificate change in progress other than this run (or the rotation it rolls back), if any. */
async function otherCertChange(req: ActivityRequest, run: Run): Promise<Run | undefined> {
  const holder = await req.services.runs.certActive(run.deployment);
  if (holder === undefined || holder === run.runId || holder === run.parentRunId) return undefined;
  const held = await req.services.runs.get(holder);
  return held && !finalStates.includes(held.state) ? held : undefined;
}

/** The refusal of an approval while another certificate change is in progress: which run, and what to do. */
function busyReply(holder: string, state: RunState): string {
  const what = state === 'halted'
    ? 'it is halted: Resume it, Roll back or Abandon it on its card'
    : 'it is running: wait for it to finish';
  return `Another certificate change is in progress: run ${holder} (${state}); ${what}. One certificate change runs at a time, so nothing was changed: approve this plan once that run has ended (it stays open until it expires).`;
}

/**
 * A rollback that was rejected, withdrawn or expired: its rotation's pending rollback is cleared
 * (halted again with Resume and Roll back) and the rotation's card updated.
 */
async function rollbackSettled(req: ActivityRequest, run: Run, log: Logger): Promise<void> {
  if (run.kind !== 'cert-rollback' || !run.parentRunId) return;
  const cleared = await req.services.runs.clearPendingRollback(run.parentRunId, run.runId);
  log.info({ rotationRunId: run.parentRunId, cleared }, 'rollback not approved: the rotation\'s pending rollback is cleared');
  if (cleared) await refreshCertCard(req.services, run.parentRunId, log);
}

/** The signed job an approval starts, or undefined when the run's record cannot make a valid one. */
function approvedJob(run: Run, approvedBy: string): JobPayload | undefined {
  if (run.kind === 'cert-rotate') return rotateJob(run, approvedBy, run.attempt, undefined);
  if (run.kind === 'cert-rollback') {
    if (!run.parentRunId || !run.rollback) return undefined;
    const parsed = jobPayloadSchema.safeParse({
      type: 'cert-rollback',
      runId: run.runId,
      deployment: run.deployment,
      requestedBy: run.requester.aadObjectId,
      rotationRunId: run.parentRunId,
      restoreThumbprint: run.rollback.restoreThumbprint,
      failedThumbprint: run.rollback.failedThumbprint,
      approvedBy,
      attempt: run.attempt,
    });
    return parsed.success ? parsed.data : undefined;
  }
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

/**
 * The rotation job: what the approver saw (the plan's file and thumbprints), as attempt `attempt`.
 * `approvedBy` is always the second person who approved the plan; `resumedBy` who clicked Resume.
 */
function rotateJob(run: Run, approvedBy: string, attempt: number, resumedBy: string | undefined): JobPayload | undefined {
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
 * Resume (approvers): a halted rotation runs again as attempt n + 1 (the agent skips the steps its
 * journal records done). The start timeout of the new attempt first, then one compare-and-set moves
 * halted → approved and raises the attempt (refused if another click did it first), then the job
 * `<runId>-cert-rotate-a<n>`: a double click or a second bot instance starts it once.
 */
async function resume(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
  const { runs, jobs, timers, authorizer, now } = req.services;
  const allowed = authorizer.canApprove(req.from.aadObjectId);
  if (!allowed.allowed) {
    log.info({ reason: allowed.reason }, 'resume refused');
    return allowed.reason;
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
  // What the second person approved stays approved by them; the job says who resumed it.
  const approvedBy = run.approval?.decision === 'approved' ? run.approval.decidedBy?.aadObjectId : undefined;
  const job = approvedBy ? rotateJob(run, approvedBy, attempt, req.from.aadObjectId) : undefined;
  if (!job) {
    log.error({ hasPlan: Boolean(run.plan), attempt }, 'run record is incomplete (or too many attempts): cannot build the resumed job');
    return 'This rotation cannot be resumed: its record is incomplete or it was resumed too often. Nothing was changed; roll back or start a new `cert rotate`.';
  }
  try {
    await scheduleTimer(timers, log, run.runId, 'start-timeout', jobTimeoutAt(job.type, now()), attempt);
  } catch (error) {
    return `Could not resume: ${describeError(error)} Nothing was changed.`;
  }
  const outcome = await runs.resume(run.runId, run.attempt, { resumedBy: req.from });
  if (!outcome.ok) {
    log.info({ outcome }, 'lost the race: the run was resumed or rolled back meanwhile');
    if (outcome.reason === 'rollback-pending') {
      const latest = await runs.get(run.runId);
      if (latest) return pendingRollbackReply(latest);
    }
    return showToAll(req, run.runId);
  }
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
 * Roll back (operators, approvers): only a halted rotation that touched CRM's registration (some
 * attempt's register-crm ran, even if it failed: the agent's validate-old checks what CRM signs with
 * now) and had an old certificate. One compare-and-set records the pending rollback on the rotation (refused when one
 * is pending already); the rotation stays halted, without Resume, until the rollback is approved
 * (then it becomes superseded) or rejected, withdrawn, expired or not started (then it is cleared).
 * The rollback run waits for an approver other than its requester on its own card, posted as a new message.
 */
async function requestRollback(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
  const { runs, timers, poster, authorizer, config, now } = req.services;
  const allowed = authorizer.canRunCommands(req.from.aadObjectId);
  if (!allowed.allowed) {
    log.info({ reason: allowed.reason }, 'rollback refused');
    return allowed.reason;
  }
  if (run.state !== 'halted') {
    log.info({ state: run.state }, 'rollback of a run that is not halted');
    return currentCard(run);
  }
  if (run.rollbackRunId) {
    log.info({ rollbackRunId: run.rollbackRunId }, 'rollback refused: one is waiting for approval');
    return pendingRollbackReply(run);
  }
  const restoreThumbprint = oldThumbprintOf(run);
  const failedThumbprint = run.plan?.type === 'cert-plan' ? run.plan.next.thumbprint : undefined;
  if (restoreThumbprint === null || failedThumbprint === undefined) {
    return 'There is nothing to roll back to: no certificate was registered before this rotation. Resume it, or start a new `cert rotate`.';
  }
  if (!registrationTouched(run)) {
    return 'There is nothing to roll back: this rotation did not change CRM\'s registration (the old certificate is still the S2S token issuer). Resume it, or Abandon it.';
  }
  const rollbackRunId = newRunId();
  const expiresAtMs = now() + config.approvalTtlMinutes * 60_000;
  try {
    // The safety net first (it acts only on a rollback still awaiting approval).
    await scheduleTimer(timers, log, rollbackRunId, 'approval-expiry', expiresAtMs);
  } catch (error) {
    return `Could not request the rollback: ${describeError(error)} Nothing was changed.`;
  }
  const pending = await runs.requestRollback(run.runId, rollbackRunId, req.from);
  if (!pending.ok) {
    log.info({ outcome: pending }, 'lost the race: the run was resumed or a rollback was requested meanwhile');
    if (pending.reason === 'pending') {
      const latest = await runs.get(run.runId);
      if (latest) return pendingRollbackReply(latest);
    }
    return showToAll(req, run.runId);
  }
  const rlog = log.child({ rollbackRunId });
  let created = false;
  try {
    const rollback = await runs.create({
      runId: rollbackRunId,
      deployment: run.deployment,
      kind: 'cert-rollback',
      state: 'awaiting-approval',
      requester: req.from,
      conversation: run.conversation,
      ...(run.plan ? { plan: run.plan } : {}),
      parentRunId: run.runId,
      rollback: { restoreThumbprint, failedThumbprint },
      expiresAtMs,
    });
    created = true;
    const posted = await poster.sendCard(rollback.conversation, certRollbackCard(rollback), invokePostPolicy);
    if (posted.ok && posted.id) {
      await runs.patch(rollbackRunId, { cardActivityId: posted.id });
      rlog.info('rollback requested: its plan card is posted');
    } else {
      rlog.warn({ status: posted.ok ? undefined : posted.status }, 'rollback requested, but its card could not be posted');
      await runs.transition(rollbackRunId, ['awaiting-approval'], 'failed', { error: { code: 'TEAMS_POST_FAILED', message: 'The bot could not post the rollback card in this conversation.' } });
      await runs.clearPendingRollback(run.runId, rollbackRunId);
      return 'The rollback card could not be posted in this conversation, so nothing was requested; try Roll back again.';
    }
  } catch (error) {
    rlog.error({ err: error }, 'could not create the rollback run: the rotation stays halted');
    if (created) await runs.transition(rollbackRunId, ['awaiting-approval'], 'failed', { error: { code: toSetupError(error).code, message: describeError(error) } }).catch(() => undefined);
    await runs.clearPendingRollback(run.runId, rollbackRunId);
    return `Could not request the rollback: ${describeError(error)} Nothing was changed.`;
  }
  return showToAll(req, run.runId);
}

/**
 * Abandon (approvers): a halted rotation that never touched CRM's registration (no attempt's
 * register-crm ran, or no agent started it) is given up, so it no longer holds the deployment's one
 * certificate change. One compare-and-set: halted → failed (ABANDONED), releasing the active change,
 * refused there too when a report meanwhile showed register-crm ran. A rotation that touched the
 * registration must be resumed or rolled back instead.
 */
async function abandon(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
  const allowed = req.services.authorizer.canApprove(req.from.aadObjectId);
  if (!allowed.allowed) {
    log.info({ reason: allowed.reason }, 'abandon refused');
    return allowed.reason;
  }
  if (run.state !== 'halted') {
    log.info({ state: run.state }, 'abandon of a run that is not halted');
    return currentCard(run);
  }
  if (run.rollbackRunId) return pendingRollbackReply(run);
  if (registrationTouched(run)) return REGISTRATION_TOUCHED;
  const outcome = await req.services.runs.abandon(run.runId, run.deployment, {
    error: { code: 'ABANDONED', message: `Abandoned by ${personName(req.from) || 'an approver'}: CRM still signs with the old certificate.` },
  });
  if (!outcome.ok && outcome.reason === 'registration-touched') {
    log.info('abandon refused: a report meanwhile showed register-crm ran');
    return REGISTRATION_TOUCHED;
  }
  if (!outcome.ok && outcome.reason === 'rollback-pending') {
    const latest = await req.services.runs.get(run.runId);
    if (latest) return pendingRollbackReply(latest);
  }
  log.info({ moved: outcome.ok }, outcome.ok ? 'rotation abandoned' : 'lost the race: the run was resumed or rolled back meanwhile');
  return showToAll(req, run.runId);
}

const REGISTRATION_TOUCHED = 'This rotation changed CRM\'s registration (its register-crm step ran), so CRM may already sign with the new certificate: it cannot be abandoned. Resume it, or Roll back to the old certificate.';

/** "A rollback was already requested by X (run Y): waiting for approval". */
function pendingRollbackReply(run: Run): string {
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
  if (run.kind !== 'approve' && run.kind !== 'test' && run.kind !== 'status') return currentCertCard(run);
  switch (run.state) {
    case 'approved':
    case 'rejected':
    case 'expired':
      return decidedCard(run);
    default:
      return runCard(run);
  }
}
