import type { Logger } from '../../../core/logger.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import { personName } from '../../cards/cert/cert-card-parts.ts';
import { registrationTouched } from '../../cards/cert/cert-run-card.ts';
import { currentCard, pendingRollbackReply, showToAll, type CardActionReply } from '../../runs/run-control.ts';
import type { Run } from '../../runs/run-model.ts';

/**
 * Abandon (approvers): a halted rotation that never touched CRM's registration (no attempt's
 * register-crm ran, or no agent started it) is given up, so it no longer holds the deployment's one
 * certificate change. One compare-and-set: halted → failed (ABANDONED), releasing the active change,
 * refused there too when a report meanwhile showed register-crm ran. A rotation that touched the
 * registration must be resumed or rolled back instead.
 */
export async function abandon(req: ActivityRequest, run: Run, log: Logger): Promise<CardActionReply> {
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
