import type { Logger } from '../../../core/logger.ts';
import { toSetupError } from '../../../core/setup-error.ts';
import { jobPayloadSchema, type JobPayload } from '../../../jobs/job-types.ts';
import { isSamePerson, type AuthzDecision } from '../authorizer.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import { recordAudit } from '../../audit-trail.ts';
import { verbs, type Verb } from '../../cards/common/card-kit.ts';
import { refreshCertCard } from '../../reports/cert-card-refresh.ts';
import { currentCard, rotateJob, setupRunJob, showToAll, type CardActionReply } from '../../runs/run-control.ts';
import { kindOf, runKinds, type RunKind } from '../../runs/run-kinds.ts';
import { finalStates, type Run, type RunPatch, type RunState } from '../../runs/run-model.ts';
import { jobTimeoutAt, scheduleTimer } from '../../runs/run-timers.ts';
import { describeError } from '../../user-facing-error.ts';
import { UNKNOWN_RUN } from './unknown-run.ts';

/** Approve / Reject (Confirm / Cancel for tests) of a plan card. */

/**
 * Who may approve or reject: the right the run's kind asks for (bot/runs/run-kinds.ts), decided by
 * the authorizer (approvers for mailboxes, requester or approver for tests, two people for
 * certificates and for `run setup`, any approver for the smaller runbook commands; the requester or
 * an approver may reject or withdraw a runbook or certificate plan).
 */
function decisionRights(req: ActivityRequest, run: Run, approving: boolean): AuthzDecision {
  const spec = kindOf(run);
  const right = approving ? spec.approve : spec.reject;
  if (right === undefined) return { allowed: false, reason: UNKNOWN_RUN };
  return req.services.authorizer.canDecide(right, req.from.aadObjectId, { requesterAadObjectId: run.requester.aadObjectId, what: spec.what });
}

export async function decide(req: ActivityRequest, verb: Verb, run: Run, log: Logger): Promise<CardActionReply> {
  const { runs, jobs, timers, now } = req.services;
  const runId = run.runId;
  const spec = kindOf(run);
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
  if (approving && spec.needsChecklist && !run.checklist) {
    log.info('approval refused: the checklist is not confirmed');
    return 'The requester must confirm the checklist first (the two questions on the card, then Confirm checklist). Nothing was changed.';
  }
  const isCertChange = spec.certChange;
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
      ? await runs.approveCert(runId, run.deployment, spec.rollsBack ? run.parentRunId : undefined, approval)
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

  await recordAudit(req, { kind: 'approval', what: verb === verbs.approve ? 'approve' : 'reject', runId, outcome: approving ? 'approved' : isSamePerson(req.from.aadObjectId, run.requester.aadObjectId) ? 'withdrawn' : 'rejected' });
  if (job) {
    let started = true;
    try {
      const { jobId } = await jobs.dispatch(job);
      log.info({ jobId }, 'approved: job enqueued');
    } catch (error) {
      started = false;
      log.error({ err: error }, 'approved, but the job could not be enqueued');
      const patch: RunPatch = { error: { code: toSetupError(error).code, message: describeError(error) } };
      if (spec.rollsBack && run.parentRunId) {
        // The rotation is halted again (Resume, Roll back) and holds the cert-active key again.
        await runs.rollbackNotStarted(runId, run.parentRunId, run.deployment, patch);
      } else {
        await runs.transition(runId, ['approved'], 'failed', patch, { releaseCertActive: run.deployment });
      }
    }
    // The rotation's card: superseded by this rollback, or halted again when it could not start.
    if (spec.rollsBack && run.parentRunId) await refreshCertCard(req.services, run.parentRunId, log);
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
function busyReply(holder: string, state: RunState, kind?: RunKind): string {
  const what = state === 'halted'
    ? kind !== undefined && runKinds[kind].runbook
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
  if (!kindOf(run).rollsBack || !run.parentRunId) return;
  const cleared = await req.services.runs.clearPendingRollback(run.parentRunId, run.runId);
  log.info({ rotationRunId: run.parentRunId, cleared }, 'rollback not approved: the rotation\'s pending rollback is cleared');
  if (cleared) await refreshCertCard(req.services, run.parentRunId, log);
}

/** The signed job an approval starts (by the job its kind's approval starts), or undefined when the run's record cannot make a valid one. */
function approvedJob(run: Run, approvedBy: string): JobPayload | undefined {
  switch (kindOf(run).approvedJob) {
    case 'cert-rotate':
      return rotateJob(run, approvedBy, run.attempt, undefined);
    case 'setup-run':
      return setupRunJob(run, approvedBy, run.attempt, undefined);
    case 'cert-rollback': {
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
    case 'approve':
    case 'test': {
      if (!run.filter || run.plan?.type !== 'plan') return undefined;
      const parsed = jobPayloadSchema.safeParse({
        type: kindOf(run).approvedJob,
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
    default:
      return undefined;
  }
}
