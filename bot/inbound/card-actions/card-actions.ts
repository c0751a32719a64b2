import { z } from 'zod';
import type { Logger } from '../../../core/logger.ts';
import { toSetupError } from '../../../core/setup-error.ts';
import { newRunId } from '../../../jobs/job-options.ts';
import { jobPayloadSchema, runIdSchema, type JobPayload } from '../../../jobs/job-types.ts';
import type { AuthzDecision } from '../authorizer.ts';
import { loadRun, type ActivityRequest } from '../../bot-services.ts';
import { recordClick } from '../../audit-trail.ts';
import { recordAudit } from '../../audit-trail.ts';
import { verbs, type Verb } from '../../cards/common/card-kit.ts';
import { certRollbackCard } from '../../cards/cert/cert-rollback-card.ts';
import { personName } from '../../cards/cert/cert-card-parts.ts';
import { oldThumbprintOf, registrationTouched } from '../../cards/cert/cert-run-card.ts';
import { checklistInputId } from '../../cards/runbook/setup-plan-card.ts';
import { refreshCertCard } from '../../reports/cert-card-refresh.ts';
import { cancelRun, currentCard, pendingRollbackReply, resumeRun, rotateJob, setupRunJob, showToAll, type CardActionReply } from '../../runs/run-control.ts';
import { finalStates, type Run, type RunPatch, type RunState } from '../../runs/run-model.ts';
import { isRunbookKind } from '../../runs/run-kinds.ts';
import { jobTimeoutAt, scheduleTimer } from '../../runs/run-timers.ts';
import { invokePostPolicy } from '../../teams-poster.ts';
import { describeError } from '../../user-facing-error.ts';
import { checklistItemIdSchema } from '../../../jobs/runbook-types.ts';

/** Card data is client-controlled: only the run id is read from it, everything else from Redis. */
const cardDataSchema = z.object({ runId: runIdSchema }).passthrough();

/** What the invoke answers: a card (replaces the clicker's view) or a short message. */
export type { CardActionReply };

/** The verbs handleCardAction answers (cert.start-rotation is the certificate watch's, bot/cert-watch.ts). */
export type RunVerb = typeof verbs.approve | typeof verbs.reject | typeof verbs.resume | typeof verbs.rollback | typeof verbs.abandon | typeof verbs.cancel | typeof verbs.confirmChecklist;

/**
 * Approve / Reject (Confirm / Cancel for tests), for a halted rotation Resume / Roll back / Abandon,
 * for the runbook Confirm checklist (`run setup`, requester only), Retry step (= Resume) and Cancel
 * (bot/run-control.ts, shared with the typed `resume` / `cancel`). Reload the run, re-check the clicker's rights by
 * Entra object id, then a compare-and-set decides: the first valid click wins, a second click,
 * a replayed invoke or another bot instance sees the decided card. The job is enqueued with its
 * deterministic id and nothing waits for the work (the invoke is answered within a few seconds).
 */
export async function handleCardAction(req: ActivityRequest, verb: Verb, data: unknown): Promise<CardActionReply> {
  let reply: CardActionReply;
  let failed = false;
  try {
    reply = await act(req, verb, data);
  } catch (error) {
    // Redis away (the producer connection fails within ~2 s), or a bug: answer the invoke in time
    // with what to do rather than letting Teams show a generic failure.
    req.log.error({ err: error, verb }, 'card action failed');
    reply = describeError(error);
    failed = true;
  }
  // Audited once the action is decided (a string reply is a refusal); never breaks the click.
  await recordClick(req, verb, data, reply, failed);
  return reply;
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
  // Every action on a run needs an operator or an approver (each action's own right is checked
  // after): a stranger with a run id learns nothing, not even whether the run exists.
  // Approve and Reject say who may approve (approvers); every other action says who may run commands.
  const member = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!member.allowed) {
    const reason = verb === verbs.approve || verb === verbs.reject ? req.services.authorizer.canApprove(req.from.aadObjectId) : member;
    log.info('card action refused: may not run commands');
    return reason.allowed ? member.reason : reason.reason;
  }
  const run = await loadRun(req.services, runId, log);
  if (!run) {
    log.info('card action for an unknown run');
    return UNKNOWN_RUN;
  }
  switch (verb) {
    case verbs.approve:
    case verbs.reject:
      if (run.kind !== 'approve' && run.kind !== 'test' && run.kind !== 'cert-rotate' && run.kind !== 'cert-rollback' && !isRunbookKind(run.kind)) break;
      return decide(req, verb, run, log);
    case verbs.resume:
      // Resume of a halted rotation, Retry step of a halted runbook run (verbs.retryStep is the same verb).
      if (run.kind !== 'cert-rotate' && !isRunbookKind(run.kind)) break;
      return resumeRun(req, run, log);
    case verbs.cancel:
      return cancelRun(req, run, log);
    case verbs.confirmChecklist:
      if (run.kind !== 'setup') break;
      return confirmChecklist(req, run, data, log);
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

/**
 * Who may approve or reject: approvers for mailboxes, requester or approver for tests, two people for
 * certificates and for `run setup` (it may change the S2S certificate); any approver for the smaller
 * runbook commands. The requester (or an approver) may reject or withdraw a runbook plan.
 */
function decisionRights(req: ActivityRequest, run: Run, approving: boolean): AuthzDecision {
  const { authorizer } = req.services;
  const context = { requesterAadObjectId: run.requester.aadObjectId };
  switch (run.kind) {
    case 'approve':
      return authorizer.canApprove(req.from.aadObjectId);
    case 'test':
      return authorizer.canConfirmTest(req.from.aadObjectId, context);
    case 'setup':
    case 'profile':
    case 'tenant':
    case 'configure':
    case 'ews':
    case 'primary-org': {
      if (!approving) return authorizer.canRejectOrWithdraw(req.from.aadObjectId, context);
      const approver = authorizer.canApprove(req.from.aadObjectId);
      if (!approver.allowed || run.kind !== 'setup') return approver;
      // The two-person rule, as for a rotation (Authorizer.canApproveAsSecondPerson speaks of rotations).
      return sameId(req.from.aadObjectId, run.requester.aadObjectId)
        ? { allowed: false, reason: 'You asked for this set-up run; another approver must approve it.' }
        : { allowed: true };
    }
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
  if (approving && run.kind === 'setup' && !run.checklist) {
    log.info('approval refused: the checklist is not confirmed');
    return 'The requester must confirm the checklist first (the two questions on the card, then Confirm checklist). Nothing was changed.';
  }
  const isCertChange = run.kind === 'cert-rotate' || run.kind === 'cert-rollback' || run.kind === 'setup';
  let job: JobPayload | undefined;
  if (approving && isCertChange) {
    // Refused before anything is scheduled (a start timeout scheduled now would keep its job id and
    // fire at the wrong time once the plan is approved later); the approval CAS checks it again.
    const busy = await otherCertChange(req, run);
    if (busy) {
      log.info({ holder: busy.runId, holderState: busy.state }, 'approval refused: another certificate change is in progress');
      return busyReply(busy.runId, busy.state, busy.kind);
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
      return busyReply(outcome.holder, outcome.holderState, (await runs.get(outcome.holder))?.kind);
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

  await recordAudit(req, { kind: 'approval', what: verb === verbs.approve ? 'approve' : 'reject', runId, outcome: approving ? 'approved' : sameId(req.from.aadObjectId, run.requester.aadObjectId) ? 'withdrawn' : 'rejected' });
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
function busyReply(holder: string, state: RunState, kind?: Run['kind']): string {
  const what = state === 'halted'
    ? kind === 'setup'
      ? 'it is a halted `run setup`: Retry step or Cancel it on its card'
      : 'it is halted: Resume it, Roll back or Abandon it on its card'
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
  if (isRunbookKind(run.kind)) return setupRunJob(run, approvedBy, run.attempt, undefined);
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

function sameId(a: string, b: string): boolean {
  const n = (id: string) => id.trim().toLowerCase();
  return n(a).length > 0 && n(a) === n(b);
}

/** The Confirm checklist click's data: the toggles' values ('true' when on), read for the two questions only. */
const checklistDataSchema = z.object(Object.fromEntries(checklistItemIdSchema.options.map((id) => [checklistInputId(id), z.string().max(10).optional()]))).passthrough();

/**
 * Confirm checklist (`run setup` plan card): only the requester (still an operator or an approver),
 * only while the plan awaits approval,
 * only with both questions switched on. Stored with the run (a compare-and-set on awaiting-approval,
 * refused once the plan has expired) and the card re-rendered for everyone: the toggles become "confirmed by".
 */
async function confirmChecklist(req: ActivityRequest, run: Run, data: unknown, log: Logger): Promise<CardActionReply> {
  // A requester who is no longer an operator (nor an approver) confirms nothing.
  const member = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!member.allowed) {
    log.info({ reason: member.reason }, 'checklist confirmation refused: may not run commands');
    return member.reason;
  }
  if (!sameId(req.from.aadObjectId, run.requester.aadObjectId)) {
    log.info('checklist confirmation refused: not the requester');
    return `Only ${personName(run.requester) || 'the person who asked for this run'} (who asked for it) can confirm the checklist.`;
  }
  if (run.state !== 'awaiting-approval') return currentCard(run);
  if (run.checklist) return showToAll(req, run.runId);
  const parsed = checklistDataSchema.safeParse(data);
  const values = parsed.success ? (parsed.data as Record<string, unknown>) : {};
  const unconfirmed = checklistItemIdSchema.options.filter((id) => values[checklistInputId(id)] !== 'true');
  if (unconfirmed.length > 0) {
    log.info({ unconfirmed }, 'checklist confirmation refused: not every question is switched on');
    return 'Switch on both checklist questions (they must be true before the set-up can work), then Confirm checklist. Nothing was changed.';
  }
  const confirmedAt = new Date(req.services.now()).toISOString();
  const outcome = await req.services.runs.transition(run.runId, ['awaiting-approval'], 'awaiting-approval', { checklist: { confirmedBy: req.from, confirmedAt } }, { refuseIfExpired: true });
  log.info({ outcome }, outcome.ok ? 'checklist confirmed' : 'checklist not stored: the plan moved on');
  if (outcome.ok) await recordAudit(req, { kind: 'approval', what: 'confirm checklist', runId: run.runId, outcome: 'confirmed' });
  return showToAll(req, run.runId);
}
