import type { PayloadOf } from '../../../jobs/job-types.ts';
import { mergeKeyCredentials } from '../../adapters/graph/key-credentials.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import type { CertReads, CertRunEnv, CertStep, StepCert } from './common.ts';
import { readRegistered } from './register-crm.ts';

/** Removes the old certificate's key credential (read-merge-write). */
export async function retireOld(ctx: JobContext, certs: ReadyCerts, oldThumbprint: string): Promise<StepOutcome> {
  const graph = certs.graph();
  const sp = await graph.getCrmServicePrincipal();
  const plan = mergeKeyCredentials(sp.keyCredentials, ctx.now(), { remove: [oldThumbprint] });
  if (plan.removed === 0) return { detail: `the key credential of ${oldThumbprint} is already gone` };
  if (plan.write) await graph.setKeyCredentials(sp.id, plan.write);
  // Not a change the async services pick up: no restart is owed for it.
  return { detail: `removed the key credential of ${oldThumbprint}${plan.dropped > 0 ? ` and ${plan.dropped} expired` : ''}` };
}

/**
 * retire-old (the rotation's last step): once the verification passed, Entra ID stops trusting the
 * replaced certificate (CERT_RETIRE_OLD=remove). Skipped without running when the verification
 * failed (the old credential stays for a rollback) or verified nothing, when the old credential is
 * kept until it expires, or when there was no old certificate.
 */
export function retireOldStep(certs: ReadyCerts, cert: () => StepCert, reads: CertReads = {}, run?: PayloadOf<'cert-rotate'>): CertStep<CertRunEnv> {
  return {
    id: 'retire-old',
    async check(env) {
      if (certs.settings.CERT_RETIRE_OLD === 'keep-until-expiry') return { upToDate: false, state: 'skipped', detail: 'the old key credential is kept until it expires' };
      const registered = await (reads.registered?.() ?? readRegistered(env.ctx, certs));
      if (!registered || registered.thumbprint === cert().thumbprint) return { upToDate: false, state: 'skipped', detail: 'there is no old certificate' };
      return { upToDate: false, detail: `would remove the key credential of ${registered.thumbprint} once the verification passed` };
    },
    skip({ facts }) {
      if (!facts.passed) return 'the verification failed, so the old key credential stays for a rollback';
      if (facts.verification === null) return 'kept: nothing was verified';
      if (certs.settings.CERT_RETIRE_OLD === 'keep-until-expiry') return 'kept until it expires (CERT_RETIRE_OLD=keep-until-expiry)';
      if (!run || run.oldThumbprint === null || run.oldThumbprint === run.newThumbprint) return 'there was no old certificate';
      return undefined;
    },
    async apply(env) {
      const old = run?.oldThumbprint;
      if (!old) return { detail: 'there was no old certificate', wrote: false };
      return { ...(await retireOld(env.ctx, certs, old)), wrote: false };
    },
  };
}
