import type { StepState } from '../../jobs/cert-types.ts';
import type { Report } from '../../jobs/job-types.ts';
import { kindOf } from '../runs/run-kinds.ts';
import type { Run } from '../runs/run-model.ts';

/** What the relay decides from a report alone (its job type, its steps, its error code). */

/** Whether the report's job is one of the jobs of the run's kind (bot/runs/run-kinds.ts). */
export function jobTypeFits(run: Run, report: Report): boolean {
  return kindOf(run).jobTypes.includes(report.jobType);
}

/** The step states a report carries (progress, failed report, rotation or rollback result). */
export function stepsOf(report: Report): StepState[] | undefined {
  const event = report.event;
  switch (event.kind) {
    case 'progress':
      return event.progress.steps;
    case 'failed':
      return event.steps;
    case 'result':
      return event.result.type === 'cert-rotate' || event.result.type === 'cert-rollback' || event.result.type === 'setup-run' ? event.result.steps : undefined;
    default:
      return undefined;
  }
}

/** Errors about the run as a whole, never about one step: retrying the step cannot help. */
const notAboutAStep: readonly string[] = ['PLAN_CHANGED', 'TWO_PERSON_RULE'];

/**
 * Whether a failed `setup-run` report is a failed step (the run halts: fix it, Retry step): it
 * carries the step states with one of them failed, and its error is not about the run as a whole.
 */
export function isStepFailure(code: string, steps: readonly StepState[] | undefined): boolean {
  // JOB_STALLED: the agent stopped during a step too often (BullMQ gave up on the job); the report
  // carries no step states, the run keeps the last ones it saw, and Retry step starts a new attempt.
  if (code === 'JOB_STALLED') return true;
  return !notAboutAStep.includes(code) && (steps ?? []).some((s) => s.state === 'failed');
}

/** Jobs that run again as attempt n + 1 (their reports' seqs say which attempt they belong to). */
export function isAttemptJob(report: Report): boolean {
  return report.jobType === 'cert-rotate' || report.jobType === 'cert-rollback' || report.jobType === 'setup-run';
}

/** A rotation, rollback or `run setup` reaching a final state releases the deployment's cert-active key (same step). */
export function certChangeOptions(run: Run): { releaseCertActive?: string } {
  return kindOf(run).certChange ? { releaseCertActive: run.deployment } : {};
}
