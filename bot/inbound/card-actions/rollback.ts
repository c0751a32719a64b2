import type { Logger } from '../../../core/logger.ts';
import { toSetupError } from '../../../core/setup-error.ts';
import { newRunId } from '../../../jobs/job-options.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import { certRollbackCard } from '../../cards/cert/cert-rollback-card.ts';
import { oldThumbprintOf, registrationTouched } from '../../cards/cert/cert-run-card.ts';
import { currentCard, pendingRollbackReply, showToAll, type CardActionReply } from '../../runs/run-control.ts';
import type { Run } from '../../runs/run-model.ts';
import { scheduleTimer } from '../../runs/run-timers.ts';
import { invokePostPolicy } from '../../teams-poster.ts';
import { describeError } from '../../user-facing-error.ts';

/**
 * Roll back (operators, approvers): only a halted rotation that touched CRM's registration (some
 * attempt's register-crm ran, even if it failed: the agent's validate-old checks what CRM signs with
 * now) and had an old certificate. One compare-and-set records the pending rollback on the rotation (refused when one
 * is pending already); the rotation stays halted, without Resume, until the rollback is approved
 * (then it becomes superseded) or rejected, withdrawn, expired or not started (then it is cleared).
 * The rollback run waits for an approver other than its requester on its own card, posted as a new message.
 */
export async function requestRollback(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
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

