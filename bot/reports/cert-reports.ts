import type { Logger } from '../../core/logger.ts';
import type { CertPlanResult, CertRollbackResult, CertRotateResult, CertStatusResult, Report } from '../../jobs/job-types.ts';
import { handleCertWatchResult } from '../cert-watch/cert-watch.ts';
import { certPlanBlockedCard, certPlanCard } from '../cards/cert/cert-plan-card.ts';
import { certResultsCard, certRunCard } from '../cards/cert/cert-run-card.ts';
import { certStatusCard } from '../cards/cert/cert-status-card.ts';
import { kindOf } from '../runs/run-kinds.ts';
import type { Run, RunPatch, RunState } from '../runs/run-model.ts';
import { scheduleTimer } from '../runs/run-timers.ts';
import { refreshCertCard } from './cert-card-refresh.ts';
import { certChangeOptions } from './report-rules.ts';
import type { ReportContext } from './report-context.ts';

/** The reports of the certificate runs: status (and the expiry watch's), rotation plan, rotation and rollback results. */

export async function certStatusResult(ctx: ReportContext, run: Run, report: Report, result: CertStatusResult, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  if (kindOf(run).watch) {
    if (run.state !== 'running') {
      log.info({ state: run.state }, 'certificate watch result for a run that has ended: dropped');
      return;
    }
    // The watch posts its rotation-due card itself (once per threshold, SET NX), then the run ends.
    await handleCertWatchResult(ctx.services, run, result, log);
    const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
    if (moved.ok) await runs.markFinalPosted(run.runId, report.seq);
    log.info({ daysLeft: result.daysLeft, agree: result.agree }, 'certificate watch check finished');
    return;
  }
  const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
  const latest = await ctx.final.settle(run, report, moved, 'succeeded', log);
  if (!latest) return;
  await ctx.final.postFinal(latest, report, certStatusCard(latest, result), log);
}

export async function certPlanResult(ctx: ReportContext, run: Run, report: Report, plan: CertPlanResult, log: Logger): Promise<void> {
  const { runs, config, now } = ctx.services;
  const to: RunState = plan.blocked ? 'plan-failed' : 'awaiting-approval';
  const expiresAt = now() + config.approvalTtlMinutes * 60_000;
  if (to === 'awaiting-approval' && run.state === 'planning') {
    await scheduleTimer(ctx.services.timers, log, run.runId, 'approval-expiry', expiresAt);
  }
  const moved = await runs.transition(run.runId, ['planning'], to, {
    plan,
    steps: plan.steps,
    lastPostedSeq: report.seq,
    ...(plan.blocked ? {} : { expiresAt }),
  });
  const latest = await ctx.final.settle(run, report, moved, to, log);
  if (latest?.plan?.type !== 'cert-plan') return;
  await ctx.final.postFinal(latest, report, plan.blocked ? certPlanBlockedCard(latest, latest.plan) : certPlanCard(latest, latest.plan), log);
  log.info({ blocked: plan.blocked, newThumbprint: plan.next.thumbprint }, 'rotation planned');
}

export async function certRotateResult(ctx: ReportContext, run: Run, report: Report, result: CertRotateResult, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  const to: RunState = result.outcome === 'rotated' ? 'succeeded' : 'halted';
  const moved = await runs.transition(run.runId, ['approved', 'running'], to, { result, steps: result.steps, lastPostedSeq: report.seq }, certChangeOptions(run));
  const latest = await ctx.final.settle(run, report, moved, to, log);
  if (!latest) return;
  await ctx.final.postFinal(latest, report, certRunCard(latest), log, to === 'succeeded' ? certResultsCard(latest, result) : undefined);
  log.info({ outcome: result.outcome, attempt: latest.attempt }, to === 'succeeded' ? 'certificate rotated' : 'rotation halted: verification failed');
}

export async function certRollbackResult(ctx: ReportContext, run: Run, report: Report, result: CertRollbackResult, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  const ok = result.outcome === 'rolled-back';
  const to: RunState = ok ? 'succeeded' : 'failed';
  const patch: RunPatch = {
    result,
    steps: result.steps,
    lastPostedSeq: report.seq,
    ...(ok
      ? {}
      : {
          error: {
            code: 'VERIFICATION_FAILED',
            message: 'The old certificate is the S2S token issuer again, but the verification mailboxes still did not pass Test & Enable.',
            hint: 'Fix the causes listed below (each says what to do), then test the mailboxes again.',
          },
        }),
  };
  const from: RunState[] = ['approved', 'running'];
  // A failed rollback whose register-crm never ran changed nothing: its rotation is halted again.
  const moved = !ok && run.parentRunId
    ? await runs.rollbackFailed(run.runId, run.parentRunId, run.deployment, from, patch)
    : await runs.transition(run.runId, from, to, patch, certChangeOptions(run));
  const latest = await ctx.final.settle(run, report, moved, to, log);
  if (!latest) return;
  await ctx.final.postFinal(latest, report, certRunCard(latest), log, certResultsCard(latest, result));
  log.info({ outcome: result.outcome }, 'rollback finished');
  if (!ok) await rotationBack(ctx, latest, log);
}

/**
 * A failed rollback that never touched CRM's registration put its rotation back to halted (in the
 * same step as its failure, RunStore.rollbackFailed): the rotation's card offers Resume, Roll back
 * (and Abandon as the rules say) again. Also on a redelivered report (the card is the current one).
 */
export async function rotationBack(ctx: ReportContext, rollback: Run, log: Logger): Promise<void> {
  if (!kindOf(rollback).rollsBack || !rollback.parentRunId || rollback.state !== 'failed') return;
  const rotation = await ctx.services.runs.get(rollback.parentRunId);
  if (rotation?.state !== 'halted' || rotation.failedRollbackRunId !== rollback.runId) return;
  log.info({ rotationRunId: rotation.runId }, 'the rollback failed before changing CRM\'s registration: its rotation is halted again');
  await refreshCertCard(ctx.services, rotation.runId, log, 10_000);
}
