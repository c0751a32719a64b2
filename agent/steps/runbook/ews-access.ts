import { SetupError } from '../../../core/setup-error.ts';
import { AFTER_SHUTDOWN_OPTIONS, CONFIRM_APP_ID, ewsDaysLeft, isAfterEwsShutdown } from '../../../jobs/ews-access.ts';
import { allowEws, ewsAllowedFor, olderEwsPolicy, readEws, type EwsRead } from '../../adapters/exchange/ews.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { RunbookStep, StepCheck } from '../step.ts';
import { stepDetail } from '../detail.ts';

/**
 * ews-access (procedure.md §1, "Deadlines"; d365-contract.md "EWS access in Exchange Online"):
 * Exchange Online blocks EWS since 1 October 2026 unless the organization's EwsEnabled is true and
 * CRM's app is in EwsAllowedAppIDs; server-side sync is EWS, so Test & Enable cannot pass without
 * it. The step allow-lists EWS_APP_ID and sets EwsEnabled $true (Set-EwsAccess: each only when
 * needed, read back). Exchange Online may take up to 24 hours to apply the change, which the step
 * says; a Test & Enable that still meets the 403 halts with the EWS cause and is retried later.
 * After 1 April 2027 nothing can allow EWS: the step blocks the plan with Microsoft's options.
 */

const daysLeftText = (now: number) => {
  const days = ewsDaysLeft(now);
  return `${days} day${days === 1 ? '' : 's'} left until EWS in Exchange Online is switched off (1 April 2027)`;
};

async function read(ctx: JobContext): Promise<{ read: EwsRead; appId: string }> {
  const { certs, read: found } = await readEws(ctx);
  return { read: found, appId: certs.exchange.ewsAppId };
}

function shutDown(): SetupError {
  return new SetupError('STEP_FAILED', 'EWS in Exchange Online is switched off for good since 1 April 2027: server-side sync from CRM on-premises to Exchange Online cannot work.', {
    hint: AFTER_SHUTDOWN_OPTIONS,
    retryable: false,
  });
}

export const ewsAccessStep: RunbookStep = {
  id: 'ews-access',
  async check(env): Promise<StepCheck> {
    const now = env.ctx.now();
    if (isAfterEwsShutdown(now)) {
      const error = shutDown();
      return { upToDate: false, detail: stepDetail(`cannot go on: ${error.message}`), blocker: { message: error.message, fix: error.hint ?? AFTER_SHUTDOWN_OPTIONS } };
    }
    let found: Awaited<ReturnType<typeof read>>;
    try {
      found = await read(env.ctx);
    } catch (error) {
      // Exchange Online is not configured or not reachable: the plan cannot say what the step would do.
      const message = `EWS access in Exchange Online cannot be checked: ${error instanceof Error ? error.message : String(error)}`;
      const fix = (error instanceof SetupError ? error.hint : undefined) ?? 'Check the Exchange Online settings of the agent (EXO_CERT_THUMBPRINT, EXO_ORGANIZATION) and the ExchangeOnlineManagement module on its host.';
      return { upToDate: false, detail: stepDetail(`cannot go on: ${message}`), blocker: { message: stepDetail(message), fix } };
    }
    if (ewsAllowedFor(found.read, found.appId)) {
      // The older user-agent policy is not this step's to change: an allow-list of no client blocks the plan, a list says to check it.
      const policy = found.read.applicationAccessPolicy;
      const older = olderEwsPolicy(found.read);
      if (older.allowListBlocksAll) {
        const message = 'Exchange Online allows CRM\'s app, but its older EwsApplicationAccessPolicy is EnforceAllowList with an empty EwsAllowList, which refuses every EWS client.';
        return { upToDate: false, detail: stepDetail(`cannot go on: ${message}`), blocker: { message, fix: "Add CRM's user agent to EwsAllowList (Set-OrganizationConfig -EwsAllowList) or clear the policy (Set-OrganizationConfig -EwsApplicationAccessPolicy $null), then ask for the plan again." } };
      }
      const caveat = older.olderPolicyApplies ? `; the older EwsApplicationAccessPolicy ${policy} also applies: check that it lets CRM's user agent through` : '';
      return { upToDate: true, detail: stepDetail(`already done: Exchange Online allows EWS for CRM (EwsEnabled True, ${found.appId} allow-listed)${caveat}; ${daysLeftText(now)}`) };
    }
    const what = [
      !(found.read.allowedAppIds ?? []).some((id) => id.toLowerCase() === found.appId) && `add ${found.appId} to EwsAllowedAppIDs`,
      found.read.organizationEnabled !== true && `set the organization's EwsEnabled to True (now ${found.read.organizationEnabled === null ? 'not set' : 'False'})`,
    ].filter((w): w is string => typeof w === 'string');
    return { upToDate: false, detail: stepDetail(`would ${what.join(' and ')} in Exchange Online (it may take up to 24 hours to apply); ${daysLeftText(now)}`) };
  },
  async apply(env) {
    if (isAfterEwsShutdown(env.ctx.now())) throw shutDown();
    const out = await allowEws(env.ctx);
    const appId = env.ctx.certs?.exchange.ewsAppId ?? '';
    if (!ewsAllowedFor({ organizationEnabled: out.organizationEnabled, allowedAppIds: out.allowedAppIds }, appId)) {
      throw new SetupError('STEP_FAILED', `Set-OrganizationConfig finished but Exchange Online reads back EwsEnabled ${String(out.organizationEnabled)} and ${out.allowedAppIds.length} allowed apps without ${appId}.`, {
        hint: `Check with Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy whether a policy or another administrator resets it, then Retry. ${CONFIRM_APP_ID}`,
      });
    }
    if (out.changed.length === 0) return { detail: stepDetail(`Exchange Online already allows EWS for CRM; ${daysLeftText(env.ctx.now())}`), changed: false, wrote: false };
    const done = out.changed.map((c) => (c === 'EwsEnabled' ? 'set EwsEnabled True' : `added ${appId} to EwsAllowedAppIDs`)).join(' and ');
    env.ctx.logger.info({ changed: out.changed }, 'EWS allowed for CRM in Exchange Online');
    return {
      detail: stepDetail(`${done}; Exchange Online can take up to 24 hours to apply it (until then Test & Enable may fail with 403); ${daysLeftText(env.ctx.now())}`),
      changed: false,
      wrote: true,
    };
  },
};
