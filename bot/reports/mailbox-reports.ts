import type { Logger } from '../../core/logger.ts';
import type { ApproveResult, PlanResult, Report, StatusResult, TestResult } from '../../jobs/job-types.ts';
import { readAgentSeen } from '../bot-services.ts';
import { planCard } from '../cards/mailboxes/plan-cards.ts';
import { resultsCard, runCard } from '../cards/mailboxes/run-cards.ts';
import { statusCard } from '../cards/mailboxes/status-card.ts';
import type { Run, RunState } from '../runs/run-model.ts';
import { scheduleTimer } from '../runs/run-timers.ts';
import type { ReportContext } from './report-context.ts';

/** The reports of the mailbox runs (approve, test, status): plan, status and work results. */

export async function planResult(ctx: ReportContext, run: Run, report: Report, plan: PlanResult, log: Logger): Promise<void> {
  const { runs, config, now } = ctx.services;
  const to: RunState = plan.toChange === 0 ? 'succeeded' : 'awaiting-approval';
  const expiresAt = now() + config.approvalTtlMinutes * 60_000;
  if (to === 'awaiting-approval' && run.state === 'planning') {
    // The safety net first: it expires the plan card for everyone when nobody decides in time. It
    // acts only on a run still awaiting approval, so scheduling it before the transition is
    // harmless; if it cannot be scheduled, nothing has changed and BullMQ delivers the report again.
    await scheduleTimer(ctx.services.timers, log, run.runId, 'approval-expiry', expiresAt);
  }
  const moved = await runs.transition(run.runId, ['planning'], to, { plan, expiresAt, lastPostedSeq: report.seq });
  const latest = await ctx.final.settle(run, report, moved, to, log);
  if (latest?.plan?.type !== 'plan') return;
  await ctx.final.postFinal(latest, report, planCard(latest, latest.plan), log);
}

export async function statusResult(ctx: ReportContext, run: Run, report: Report, result: StatusResult, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
  const latest = await ctx.final.settle(run, report, moved, 'succeeded', log);
  if (!latest) return;
  await ctx.final.postFinal(latest, report, statusCard(latest, await readAgentSeen(ctx.services), result), log);
}

export async function workResult(ctx: ReportContext, run: Run, report: Report, result: ApproveResult | TestResult, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  const moved = await runs.transition(run.runId, ['approved', 'running'], 'succeeded', { result, lastPostedSeq: report.seq });
  const latest = await ctx.final.settle(run, report, moved, 'succeeded', log);
  if (!latest) return;
  await ctx.final.postFinal(latest, report, runCard(latest), log, resultsCard(latest, result));
  log.info({ result: { type: result.type, failed: result.failed } }, 'run finished');
}
