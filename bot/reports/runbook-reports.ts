import type { Logger } from '../../core/logger.ts';
import type { PreflightResult, Report, SetupPlanResult, SetupRunResult } from '../../jobs/job-types.ts';
import { preflightCard } from '../cards/runbook/preflight-card.ts';
import { setupPlanCard } from '../cards/runbook/setup-plan-card.ts';
import { setupResultsCard, setupRunCard } from '../cards/runbook/setup-run-card.ts';
import type { Run, RunState } from '../runs/run-model.ts';
import { scheduleTimer } from '../runs/run-timers.ts';
import { certChangeOptions } from './report-rules.ts';
import type { ReportContext } from './report-context.ts';

/** The reports of the runbook (docs/runbook.md): preflight, the runbook's plan and its run. */

export async function preflightResult(ctx: ReportContext, run: Run, report: Report, result: PreflightResult, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
  const latest = await ctx.final.settle(run, report, moved, 'succeeded', log);
  if (!latest) return;
  if (moved.ok) await ctx.final.audit(latest, report, result.ok ? 'ok: every check passed' : `not ready: ${result.checks.filter((c) => c.status === 'failed').map((c) => c.id).join(', ')} failed`, log);
  await ctx.final.postFinal(latest, report, preflightCard(latest, result), log);
}

/**
 * The runbook's plan: a dry run ends with it (succeeded, no buttons); a blocked plan is plan-failed
 * (each blocker with its fix); nothing to change ends the run (succeeded); otherwise it awaits
 * approval (the expiry timer first, as for every plan).
 */
export async function setupPlanResult(ctx: ReportContext, run: Run, report: Report, plan: SetupPlanResult, log: Logger): Promise<void> {
  const { runs, config, now } = ctx.services;
  const to: RunState = run.dryRun ? 'succeeded' : plan.blocked ? 'plan-failed' : plan.changes === 0 ? 'succeeded' : 'awaiting-approval';
  const expiresAt = now() + config.approvalTtlMinutes * 60_000;
  if (to === 'awaiting-approval' && run.state === 'planning') {
    await scheduleTimer(ctx.services.timers, log, run.runId, 'approval-expiry', expiresAt);
  }
  const steps = plan.steps.map((s) => ({ id: s.id, state: s.state, detail: s.detail }));
  const moved = await runs.transition(run.runId, ['planning'], to, {
    plan,
    steps,
    lastPostedSeq: report.seq,
    ...(to === 'awaiting-approval' ? { expiresAt } : {}),
  });
  const latest = await ctx.final.settle(run, report, moved, to, log);
  if (latest?.plan?.type !== 'setup-plan') return;
  if (moved.ok) {
    const outcome = run.dryRun
      ? `dry run: ${plan.changes} step(s) would change`
      : plan.blocked
        ? `blocked: ${plan.blockers.length} blocker(s)`
        : plan.changes === 0
          ? 'nothing to change'
          : `planned: ${plan.changes} step(s) to change, awaiting approval`;
    await ctx.final.audit(latest, report, outcome, log);
  }
  await ctx.final.postFinal(latest, report, setupPlanCard(latest, latest.plan), log);
  log.info({ scope: plan.scope, changes: plan.changes, blocked: plan.blocked, dryRun: run.dryRun === true }, 'runbook planned');
}

export async function setupRunResult(ctx: ReportContext, run: Run, report: Report, result: SetupRunResult, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  const moved = await runs.transition(run.runId, ['approved', 'running'], 'succeeded', { result, steps: result.steps, lastPostedSeq: report.seq }, certChangeOptions(run));
  const latest = await ctx.final.settle(run, report, moved, 'succeeded', log);
  if (!latest) return;
  if (moved.ok) {
    const tested = result.testReport ? `; Test & Enable ${result.testReport.succeeded} succeeded, ${result.testReport.failed} failed` : '';
    await ctx.final.audit(latest, report, `succeeded: ${result.changed.length === 0 ? 'nothing to change' : `changed ${result.changed.join(', ')}`}${tested}`, log);
  }
  await ctx.final.postFinal(latest, report, setupRunCard(latest), log, setupResultsCard(latest, result));
  log.info({ changed: result.changed, attempt: latest.attempt }, 'runbook run finished');
}
