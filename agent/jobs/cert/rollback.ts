import { rollbackStepIds, type CertRollbackResult } from '../../../jobs/cert-types.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import { runGuardedChange } from '../../runtime/guarded-change.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { CertRunEnv } from '../../steps/cert/common.ts';
import { verifiedMailboxIds } from '../../steps/cert/verify.ts';
import { StepRunner, runSteps } from '../../steps/runner.ts';
import { rollbackSteps } from '../../steps/table.ts';

/**
 * `cert-rollback`: the certificate a failed rotation replaced becomes the S2S token issuer again.
 * It is still in every store and still a key credential in Entra (retire-old only runs after a
 * passed verification): validate-old checks that (and that CRM still signs with the failed or the
 * restored certificate: the state the rollback was approved for), register-crm registers it, the
 * services restart, the verification set is tested again and, once it passed, retire-failed
 * removes the failed certificate's key credential so Entra ID stops trusting it. The step runner
 * over the rollback's steps (steps/table.ts).
 */
export async function rollbackCertificate(payload: PayloadOf<'cert-rollback'>, ctx: JobContext): Promise<CertRollbackResult> {
  const certs = requireCerts(ctx, ['servers', 'graph']);
  return runGuardedChange(ctx, certs, payload, (guarded) => rollback(payload, guarded, certs));
}

async function rollback(payload: PayloadOf<'cert-rollback'>, ctx: JobContext, certs: ReadyCerts): Promise<CertRollbackResult> {
  const started = ctx.now();
  const runner = await StepRunner.start(ctx, certs.journal, payload.runId, payload.attempt, rollbackStepIds);
  const env: CertRunEnv = { ctx, recorded: (id) => runner.recorded(id), facts: {} };
  // The mailboxes the rotation's verification tested (those it broke among them) are tested again.
  const sameAs = async () => verifiedMailboxIds((await certs.journal.load(payload.rotationRunId)).get('verify'));
  await runSteps(runner, rollbackSteps(certs, payload, env.facts, sameAs), env);
  const passed = env.facts.passed ?? true;

  const result: CertRollbackResult = {
    type: 'cert-rollback',
    outcome: passed ? 'rolled-back' : 'verification-failed',
    restoredThumbprint: payload.restoreThumbprint,
    steps: runner.snapshot(),
    verification: env.facts.verification ?? null,
    durationMs: Math.max(0, Math.round(ctx.now() - started)),
  };
  ctx.logger.info({ outcome: result.outcome, restoredThumbprint: result.restoredThumbprint, rotationRunId: payload.rotationRunId }, 'certificate rollback finished');
  return result;
}
