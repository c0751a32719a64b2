import { SetupError, isSetupError } from '../../../core/setup-error.ts';
import type { CertSummary } from '../../../jobs/cert-types.ts';
import { CRM_APP_ID, type CrmServicePrincipal, type GraphApi } from '../../adapters/graph/api.ts';
import { mergeKeyCredentials, newKeyCredential, thumbprintOfKeyCredential, type KeyCredentialPlan } from '../../adapters/graph/key-credentials.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import { joinDetail, reason, upToDate, would, type CertStep, type CertStepOptions } from './common.ts';

export interface EntraCheck {
  sp: CrmServicePrincipal;
  plan: KeyCredentialPlan;
  spnMissing: boolean;
}

export async function checkEntra(graph: GraphApi, now: number, next: { summary: CertSummary; derBase64: string }): Promise<EntraCheck> {
  const sp = await graph.getCrmServicePrincipal();
  return {
    sp,
    plan: mergeKeyCredentials(sp.keyCredentials, now, { add: newKeyCredential(next.summary, next.derBase64), addThumbprint: next.summary.thumbprint }),
    spnMissing: !sp.servicePrincipalNames.includes(CRM_APP_ID),
  };
}

const nothingToDo = (check: EntraCheck) => !check.plan.added && check.plan.dropped === 0 && !check.spnMissing;

export function describeEntra(check: EntraCheck, would: boolean): string {
  const verb = (done: string, future: string) => (would ? future : done);
  return joinDetail([
    check.plan.added ? verb('added the key credential', 'would add the key credential') : 'the key credential is already there',
    check.plan.dropped > 0 && verb(`dropped ${check.plan.dropped} expired`, `would drop ${check.plan.dropped} expired`),
    check.spnMissing && verb('added the CRM appId to servicePrincipalNames', 'would add the CRM appId to servicePrincipalNames'),
  ]);
}

/** Read-merge-write of keyCredentials, read back, and the CRM appId in servicePrincipalNames. */
export async function updateEntra(ctx: JobContext, certs: ReadyCerts, next: { summary: CertSummary; derBase64: string }): Promise<StepOutcome & { wrote: boolean }> {
  const graph = certs.graph();
  const check = await checkEntra(graph, ctx.now(), next);
  if (check.plan.write) {
    await graph.setKeyCredentials(check.sp.id, check.plan.write);
    const after = await graph.getCrmServicePrincipal();
    if (!after.keyCredentials.some((k) => thumbprintOfKeyCredential(k) === next.summary.thumbprint)) {
      throw new SetupError('GRAPH_REQUEST_FAILED', `Entra ID accepted the new key credential but the CRM service principal does not show it.`, {
        hint: 'Wait a few minutes (directory replication) and Resume; if it stays missing, check that GRAPH_TENANT_ID is the tenant Exchange Online uses.',
      });
    }
  }
  if (check.spnMissing) await graph.setServicePrincipalNames(check.sp.id, [...check.sp.servicePrincipalNames, CRM_APP_ID]);
  // Entra is read by Exchange Online, not by the async services: no restart is owed for it.
  return { detail: describeEntra(check, false), wrote: !nothingToDo(check) };
}

/** entra-key-credential: the certificate is a key credential of the CRM service principal, whose names include the CRM appId. */
export function entraStep(o: CertStepOptions): CertStep {
  const { certs } = o;
  return {
    id: 'entra-key-credential',
    async check(env) {
      if (o.wording === 'runbook') {
        const check = await checkEntra(certs.graph(), env.ctx.now(), o.cert());
        return nothingToDo(check) ? upToDate('the key credential is on the CRM service principal') : would(describeEntra(check, true));
      }
      try {
        const check = await checkEntra(certs.graph(), env.ctx.now(), o.cert());
        return nothingToDo(check) ? { upToDate: true, detail: 'already done' } : { upToDate: false, detail: describeEntra(check, true) };
      } catch (error) {
        if (isSetupError(error) && error.code === 'CONFIG_MISSING') throw error;
        return { upToDate: false, state: 'failed', detail: `Entra ID cannot be read: ${reason(error)}` };
      }
    },
    apply: (env) => updateEntra(env.ctx, certs, o.cert()),
  };
}
