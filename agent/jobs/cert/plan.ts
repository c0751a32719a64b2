import { type CertPlanResult, type StepState } from '../../../jobs/cert-types.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { requireCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { once, type CertRunEnv } from '../../steps/cert/common.ts';
import { readStores } from '../../steps/cert/import.ts';
import { readRegistered } from '../../steps/cert/register-crm.ts';
import { blockingProblems, newStepCert, readNewCert } from '../../steps/cert/validate.ts';
import { selectVerificationSet } from '../../steps/cert/verify.ts';
import { plannedState } from '../../steps/step.ts';
import { rotationSteps } from '../../steps/table.ts';

const clip = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * `cert-plan` (`@setup cert rotate [file]`): reads the PFX from CERT_DIR and previews every step of
 * the rotation: the `check` of each of the rotation's own steps (steps/table.ts), in order:
 * "would import on CRMAPP01, CRMAPP02", "already done". Read-only. Blocked when the certificate has
 * an error-severity problem or a step's check already fails (another certificate with the same
 * subject, a server or Entra that cannot be read). A same-subject renewal (the usual CA renewal) is
 * blocked at the import step: the servers' stores are asked for the new certificate's subject
 * before it is imported. Each server's store, the registration and the verification set are read
 * once for all the checks.
 */
export async function planRotation(payload: PayloadOf<'cert-plan'>, ctx: JobContext): Promise<CertPlanResult> {
  const certs = requireCerts(ctx, ['servers', 'pfx', 'graph']);
  const next = await readNewCert(ctx, certs, payload.file);
  const registered = await readRegistered(ctx, certs);
  const current = registered ? certs.kit.summarizeDer(registered.derBase64, { now: ctx.now(), minDaysLeft: certs.settings.CERT_MIN_DAYS_LEFT }) : null;
  const cert = newStepCert(next);
  const selection = once(() => selectVerificationSet(ctx, certs.settings.CERT_VERIFY_MAILBOXES));
  const reads = { stores: once(() => readStores(ctx, certs, cert, true)), registered: () => Promise.resolve(registered) };
  const env: CertRunEnv = { ctx, recorded: () => undefined, facts: {} };

  const steps: StepState[] = [];
  for (const step of rotationSteps({ certs, facts: env.facts, planned: { cert, reads, selection } })) {
    const check = await step.check(env);
    steps.push({ id: step.id, state: plannedState(check), detail: clip(check.detail) });
  }
  const verification = await selection();
  const result: CertPlanResult = {
    type: 'cert-plan',
    file: next.fileName,
    current,
    next: next.summary,
    servers: [...certs.servers],
    serviceAccount: certs.serviceAccount,
    cloud: certs.settings.CLOUD,
    metadataUrl: certs.metadataUrl,
    verification: { mode: verification.mode, mailboxes: verification.rows.length },
    retireOld: certs.settings.CERT_RETIRE_OLD,
    steps,
    blocked: blockingProblems(next.summary).length > 0 || steps.some((s) => s.state === 'failed'),
  };
  ctx.logger.info({ file: result.file, thumbprint: next.summary.thumbprint, blocked: result.blocked }, 'certificate rotation planned');
  return result;
}
