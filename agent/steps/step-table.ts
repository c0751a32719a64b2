import { SetupError } from '../../core/setup-error.ts';
import type { SetupStepId } from '../../jobs/runbook-types.ts';
import { adfsStep } from './runbook/adfs.ts';
import type { ReadyCerts } from '../runtime/cert-requirements.ts';
import { ewsAccessStep } from './runbook/ews-access.ts';
import { markPrimaryOrgStep } from './runbook/mark-primary-org.ts';
import { describeCheck, runPreflight, type PreflightOutcome } from '../jobs/runbook/preflight.ts';
import type { RunbookStep } from './step.ts';
import { setupCertSteps } from './runbook/cert-steps.ts';
import type { ChosenCert } from './runbook/certificate.ts';
import { approveEmailStep, configureMailboxesStep, testEnableStep } from './runbook/mailboxes.ts';
import { orgDefaultsStep } from './runbook/org-defaults.ts';
import { emailProfileStep } from './runbook/email-profile.ts';
import { tenantIdStep } from './runbook/tenant-id.ts';

/**
 * The runbook's step table (docs/runbook.md, "Steps"): one RunbookStep per SetupStepId. The
 * certificate steps exist only when the scope has them (scope setup, with its chosen certificate).
 */

/** Steps whose change the async services pick up only after a restart (restart-services is owed after them). */
export const RESTART_TRIGGERS: ReadonlySet<SetupStepId> = new Set(['import', 'grant-key-access', 'register-crm', 's2s-settings', 'tenant-id']);

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

export interface StepTableOptions {
  /** scope setup: the certificate services and the chosen certificate. */
  cert?: { certs: ReadyCerts; chosen: ChosenCert };
  /** Whether restart-services is owed (plan: an earlier step would change something; run: the journal says one did). */
  restartOwed: () => boolean;
  /** The first preflight result (the plan already ran it). */
  preflight?: PreflightOutcome;
}

/** The steps of `ids`, in order; a certificate step without `cert` is an INTERNAL error (its scope has none). */
export function runbookSteps(ids: readonly SetupStepId[], options: StepTableOptions): RunbookStep[] {
  const certSteps = options.cert ? setupCertSteps(options.cert.certs, options.cert.chosen, options.restartOwed) : undefined;
  const table: Partial<Record<SetupStepId, RunbookStep>> = {
    preflight: preflightStep(options.preflight),
    ...certSteps,
    'tenant-id': tenantIdStep(),
    'ews-access': ewsAccessStep,
    'email-profile': emailProfileStep,
    'org-defaults': orgDefaultsStep,
    'configure-mailboxes': configureMailboxesStep,
    'approve-email': approveEmailStep,
    'mark-primary-org': markPrimaryOrgStep,
    'test-enable': testEnableStep,
    adfs: adfsStep(),
  };
  return ids.map((id) => {
    const step = table[id];
    if (!step) throw new SetupError('INTERNAL', `The step ${id} has no certificate to work with in this run.`);
    return step;
  });
}
