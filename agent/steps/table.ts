import { SetupError } from '../../core/setup-error.ts';
import type { PayloadOf } from '../../jobs/job-types.ts';
import type { SetupStepId, setupCertStepIds } from '../../jobs/runbook-types.ts';
import { stepCertOf, type CertReads, type CertRunEnv, type CertRunFacts, type CertStep, type CertStepOptions, type StepCert } from './cert/common.ts';
import { entraStep } from './cert/entra-key-credential.ts';
import { grantKeyAccessStep } from './cert/grant-key-access.ts';
import { importStep } from './cert/import.ts';
import { registerStep } from './cert/register-crm.ts';
import { restartStep } from './cert/restart-services.ts';
import { retireFailedStep } from './cert/retire-failed.ts';
import { retireOldStep } from './cert/retire-old.ts';
import { settingsStep } from './cert/s2s-settings.ts';
import { validateOldStep } from './cert/validate-old.ts';
import { validateStep } from './cert/validate.ts';
import { verifyStep, type VerificationSet } from './cert/verify.ts';
import { adfsStep } from './runbook/adfs.ts';
import type { ReadyCerts } from '../runtime/cert-requirements.ts';
import { ewsAccessStep } from './runbook/ews-access.ts';
import { markPrimaryOrgStep } from './runbook/mark-primary-org.ts';
import type { PreflightOutcome } from '../jobs/runbook/preflight.ts';
import { preflightStep } from './runbook/preflight.ts';
import type { RunbookStep } from './step.ts';
import type { ChosenCert } from './runbook/certificate.ts';
import { approveEmailStep } from './runbook/approve-email.ts';
import { configureMailboxesStep } from './runbook/configure-mailboxes.ts';
import { testEnableStep } from './runbook/test-enable.ts';
import { orgDefaultsStep } from './runbook/org-defaults.ts';
import { emailProfileStep } from './runbook/email-profile.ts';
import { tenantIdStep } from './runbook/tenant-id.ts';

/**
 * The step table: the steps of every multi-step job, in their order. The rotation (rotationStepIds)
 * and the rollback (rollbackStepIds) are the certificate steps of steps/cert/ plus the ones only they
 * have (validate, verify, retire-old; validate-old, retire-failed); the runbook (docs/runbook.md,
 * "Steps") has one RunbookStep per SetupStepId, its certificate steps the rotation's own (they exist
 * only when the scope has them: scope setup, with its chosen certificate).
 */

/** The certificate a run does not have yet (validate or validate-old has not run): a bug. */
function certOf(facts: CertRunFacts): StepCert {
  if (!facts.cert) throw new SetupError('INTERNAL', 'The certificate of this run was not read.');
  return facts.cert;
}

export interface RotationStepOptions {
  certs: CertStepOptions['certs'];
  /** The rotation's facts (its certificate once validate read it). */
  facts: CertRunFacts;
  /** The plan: the certificate it read, and the reads its checks share. */
  planned?: { cert: StepCert; reads: CertReads; selection: () => Promise<VerificationSet> };
  /** The approved rotation (absent in a plan). */
  run?: PayloadOf<'cert-rotate'>;
}

/** The rotation's steps (rotationStepIds, docs/cert-rotation.md "Steps"): its plan checks them, the run applies them. */
export function rotationSteps(o: RotationStepOptions): CertStep<CertRunEnv>[] {
  const planned = o.planned;
  const cert = planned ? () => planned.cert : () => certOf(o.facts);
  const shared: CertStepOptions = { certs: o.certs, cert, wording: 'rotation', ...(planned ? { reads: planned.reads } : {}) };
  return [
    validateStep(o.certs, cert, o.run),
    importStep(shared),
    grantKeyAccessStep(shared),
    registerStep(shared),
    entraStep(shared),
    settingsStep(shared),
    restartStep(shared),
    verifyStep(o.certs, planned ? { selection: planned.selection } : {}),
    retireOldStep(o.certs, cert, planned?.reads, o.run),
  ];
}

/**
 * The rollback's steps (rollbackStepIds): validate-old, then the rotation's register-crm and
 * restart-services with the restored certificate, verify (`sameAs`: the mailboxes the rotation
 * verified), retire-failed.
 */
export function rollbackSteps(certs: CertStepOptions['certs'], run: PayloadOf<'cert-rollback'>, facts: CertRunFacts, sameAs: () => Promise<readonly string[]>): CertStep<CertRunEnv>[] {
  const shared: CertStepOptions = { certs, cert: () => certOf(facts), wording: 'rotation' };
  return [validateOldStep(certs, run), registerStep(shared), restartStep(shared), verifyStep(certs, { sameAs }), retireFailedStep(certs, run)];
}

type SetupCertStepId = (typeof setupCertStepIds)[number];

/**
 * The runbook's certificate steps (procedure §1, §2.2, §2.3, §8): the rotation's own steps with the
 * chosen certificate, in the runbook's words; restart-services only when `restartOwed`.
 */
export function runbookCertSteps(certs: CertStepOptions['certs'], chosen: ChosenCert, restartOwed: () => boolean): Record<SetupCertStepId, RunbookStep> {
  const cert = stepCertOf(chosen);
  const shared: CertStepOptions = { certs, cert: () => cert, wording: 'runbook' };
  const as = (id: SetupCertStepId, step: CertStep): RunbookStep => ({ ...step, id });
  return {
    import: as('import', importStep(shared)),
    'grant-key-access': as('grant-key-access', grantKeyAccessStep(shared)),
    'register-crm': as('register-crm', registerStep(shared)),
    'entra-key-credential': as('entra-key-credential', entraStep(shared)),
    's2s-settings': as('s2s-settings', settingsStep(shared)),
    'restart-services': as('restart-services', restartStep({ ...shared, restartOwed })),
  };
}

/** Steps whose change the async services pick up only after a restart (restart-services is owed after them). */
export const RESTART_TRIGGERS: ReadonlySet<SetupStepId> = new Set(['import', 'grant-key-access', 'register-crm', 's2s-settings', 'tenant-id']);

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
  const certSteps = options.cert ? runbookCertSteps(options.cert.certs, options.cert.chosen, options.restartOwed) : undefined;
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
