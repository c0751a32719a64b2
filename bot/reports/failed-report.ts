import type { Logger } from '../../core/logger.ts';
import type { StepState } from '../../jobs/cert-types.ts';
import type { Report } from '../../jobs/job-types.ts';
import { recordCertWatchFailure } from '../cert-watch/cert-watch.ts';
import { kindOf } from '../runs/run-kinds.ts';
import type { RunPatch, RunState, Run } from '../runs/run-model.ts';
import { runErrorFromAgent } from '../user-facing-error.ts';
import { rotationBack } from './cert-reports.ts';
import { failedCard } from './family-cards.ts';
import { certChangeOptions, isStepFailure } from './report-rules.ts';
import type { ReportContext } from './report-context.ts';

/** A failed report, whatever the job: halted, cancelled, plan-failed or failed, then its card. */

export async function failedReport(ctx: ReportContext, run: Run, report: Report, error: { code: string; message: string; hint?: string | undefined }, steps: StepState[] | undefined, log: Logger): Promise<void> {
  const { runs } = ctx.services;
  const e = runErrorFromAgent(error, run.runId);
  if (e.code !== error.code || e.message !== error.message) log.warn({ code: error.code, err: error.message }, 'the agent reported an unexpected error');
  const planning = report.jobType === 'plan' || report.jobType === 'cert-plan' || report.jobType === 'setup-plan';
  const immediate = report.jobType === 'status' || report.jobType === 'cert-status' || report.jobType === 'preflight';
  const from: RunState[] = planning ? ['planning'] : immediate ? ['running'] : ['approved', 'running'];
  // A failed rotation or runbook step halts the run for a person (Resume / Retry step); a runbook
  // run the agent stopped on its cancel key, or that failed after someone asked to cancel it, is
  // cancelled; a runbook run that failed outside its steps (the plan no longer holds, the two-person
  // rule, anything before the first step) fails: a retry could only fail the same way, and a halted
  // run would keep the certificate slot. Everything else fails.
  const setupRun = report.jobType === 'setup-run';
  const cancelled = setupRun && (e.code === 'CANCELLED' || run.cancelRequestedBy !== undefined);
  const halts = report.jobType === 'cert-rotate' || (setupRun && isStepFailure(e.code, steps));
  const to: RunState = planning ? 'plan-failed' : cancelled ? 'cancelled' : halts ? 'halted' : 'failed';
  const patch: RunPatch = { error: e, lastPostedSeq: report.seq, ...(steps ? { steps } : {}) };
  const moved = kindOf(run).rollsBack && run.parentRunId
    ? await runs.rollbackFailed(run.runId, run.parentRunId, run.deployment, from, patch)
    : await runs.transition(run.runId, from, to, patch, certChangeOptions(run));
  const latest = await ctx.final.settle(run, report, moved, to, log);
  if (!latest) return;
  if (moved.ok) await ctx.final.audit(latest, report, `failed: ${e.code}${to === 'halted' ? ' (halted)' : to === 'cancelled' ? ' (cancelled)' : ''}`, log);
  if (kindOf(latest).watch) {
    // The watch has no card of its own: the next scheduled check tries again; after several
    // failed checks in a row it says so in the watch conversation (once a day).
    log.warn({ code: e.code, err: e.message }, 'certificate watch check failed');
    await recordCertWatchFailure(ctx.services, latest, e, log);
    await runs.markFinalPosted(run.runId, report.seq);
    return;
  }
  const card = await failedCard(ctx.services, latest, report.jobType);
  await ctx.final.postFinal(latest, report, card, log);
  log.info({ code: e.code, state: to }, to === 'halted' ? 'run halted' : to === 'cancelled' ? 'run cancelled' : 'run failed');
  await rotationBack(ctx, latest, log);
}
