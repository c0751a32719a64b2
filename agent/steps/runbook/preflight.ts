import { SetupError } from '../../../core/setup-error.ts';
import { describeCheck, runPreflight, type PreflightOutcome } from '../../jobs/runbook/preflight.ts';
import type { RunbookStep } from '../step.ts';

/**
 * preflight as a step: the plan shows it done (or what fails); the run checks again on every attempt
 * and halts when a check fails.
 */
export function preflightStep(first?: PreflightOutcome): RunbookStep {
  let cached = first;
  const outcome = async (ctx: Parameters<typeof runPreflight>[0]) => {
    const out = cached ?? (await runPreflight(ctx));
    cached = undefined;
    return out;
  };
  const summary = (out: PreflightOutcome) => {
    const warnings = out.checks.filter((c) => c.status === 'warning').length;
    return `${out.checks.length} checks passed${warnings > 0 ? ` (${warnings} with a warning)` : ''}`;
  };
  return {
    id: 'preflight',
    async check(env) {
      const out = await outcome(env.ctx);
      const failed = out.checks.filter((c) => c.status === 'failed');
      if (failed.length === 0) return { upToDate: true, detail: summary(out) };
      return { upToDate: false, detail: `${failed.length} check${failed.length > 1 ? 's' : ''} fail: ${failed.map((c) => c.id).join(', ')}` };
    },
    async apply(env) {
      const out = await outcome(env.ctx);
      if (out.whoAmI) env.facts.crmUserId = out.whoAmI.UserId;
      if (out.tenantId) env.facts.tenantId = out.tenantId;
      const failed = out.checks.filter((c) => c.status === 'failed');
      if (failed.length > 0) {
        throw new SetupError('STEP_FAILED', `${failed.length} preflight check${failed.length > 1 ? 's' : ''} fail${failed.length > 1 ? '' : 's'}: ${failed.map(describeCheck).join(' | ')}`, {
          hint: failed.map((c) => c.fix ?? '').filter((f) => f.length > 0).join(' '),
          details: { checks: failed.map((c) => c.id) },
        });
      }
      return { detail: summary(out), changed: false, wrote: false };
    },
  };
}
