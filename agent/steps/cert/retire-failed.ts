import type { PayloadOf } from '../../../jobs/job-types.ts';
import { mergeKeyCredentials } from '../../adapters/graph/key-credentials.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import type { CertRunEnv, CertStep } from './common.ts';

/** Removes exactly the failed certificate's key credential (read-merge-write; every other credential is written back as it is). */
export async function retireFailed(ctx: JobContext, certs: ReadyCerts, failedThumbprint: string): Promise<StepOutcome> {
  const graph = certs.graph();
  const sp = await graph.getCrmServicePrincipal();
  const plan = mergeKeyCredentials(sp.keyCredentials, ctx.now(), { remove: [failedThumbprint], keepExpired: true });
  if (plan.removed === 0) return { detail: `the key credential of ${failedThumbprint} is already gone` };
  if (plan.write) await graph.setKeyCredentials(sp.id, plan.write);
  // Entra is read by Exchange Online, not by the async services: no restart is owed for it.
  return { detail: `removed the key credential of ${failedThumbprint}` };
}

/**
 * retire-failed (the rollback's last step): once the verification passed, Entra ID stops trusting
 * the certificate the failed rotation put in place. Skipped when the verification failed or
 * verified nothing (the credential stays until this is understood), or when it is the restored one.
 */
export function retireFailedStep(certs: ReadyCerts, run: PayloadOf<'cert-rollback'>): CertStep<CertRunEnv> {
  const failed = run.failedThumbprint;
  return {
    id: 'retire-failed',
    async check(env) {
      if (failed === run.restoreThumbprint) return { upToDate: false, state: 'skipped', detail: 'the failed certificate is the restored one' };
      const sp = await certs.graph().getCrmServicePrincipal();
      const plan = mergeKeyCredentials(sp.keyCredentials, env.ctx.now(), { remove: [failed], keepExpired: true });
      if (plan.removed === 0) return { upToDate: true, detail: `the key credential of ${failed} is already gone` };
      return { upToDate: false, detail: `would remove the key credential of ${failed} once the verification passed` };
    },
    skip({ facts }) {
      if (!facts.passed) return `the verification failed, so the key credential of ${failed} stays until this is understood`;
      if (facts.verification === null) return `kept: nothing was verified, so the key credential of ${failed} stays`;
      if (failed === run.restoreThumbprint) return 'the failed certificate is the restored one';
      return undefined;
    },
    async apply(env) {
      return { ...(await retireFailed(env.ctx, certs, failed)), wrote: false };
    },
  };
}
