import { SetupError } from '../../../core/setup-error.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { requireCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext, RunbookSettings } from '../../runtime/job-context.ts';
import type { RunbookStep } from '../step.ts';

/**
 * tenant-id (procedure §2.4): the Exchange Online tenant id from Graph (`/organization`), set on
 * the organization as S2STenantId (Set-CrmAdvancedSetting) when it differs, read back with
 * Get-CrmAdvancedSetting. The async services read it: a change owes a restart.
 */

const uniqueName = /^[A-Za-z0-9_]{1,100}$/;

/** The organization's unique name: CRM_ORG_NAME, else the last path segment of CRM_URL; neither → CONFIG_MISSING. */
export function organizationName(settings: Pick<RunbookSettings, 'CRM_ORG_NAME' | 'CRM_URL'>): string {
  if (settings.CRM_ORG_NAME) return settings.CRM_ORG_NAME;
  let last = '';
  try {
    last = new URL(settings.CRM_URL).pathname.split('/').filter((s) => s.length > 0).pop() ?? '';
  } catch {
    last = '';
  }
  if (uniqueName.test(last)) return last;
  throw new SetupError('CONFIG_MISSING', `The organization's unique name is not known: CRM_ORG_NAME is not set and CRM_URL (${settings.CRM_URL}) does not end with it.`, {
    hint: "Set CRM_ORG_NAME on the agent to the organization's unique name (Deployment Manager, Organizations; or Get-CrmOrganization), restart it, then run the command again.",
    details: { missing: ['CRM_ORG_NAME'] },
  });
}

/** The runbook settings of a job context (INTERNAL when the agent was started without them). */
export function requireRunbook(ctx: JobContext): RunbookSettings {
  if (!ctx.runbook) throw new SetupError('INTERNAL', 'This agent was started without its runbook settings.');
  return ctx.runbook;
}

const sameTenant = (a: string | null, b: string) => a !== null && a.toLowerCase() === b.toLowerCase();

export function tenantIdStep(): RunbookStep {
  const read = async (ctx: JobContext) => {
    const certs = requireCerts(ctx, ['graph']);
    const name = organizationName(requireRunbook(ctx));
    const tenantId = (await certs.graph().getTenantId()).toLowerCase();
    const current = await runScript(ctx, certs, 'Get-S2STenantId', { OrganizationName: name });
    return { certs, name, tenantId, current };
  };
  return {
    id: 'tenant-id',
    async check(env) {
      const { name, tenantId, current } = await read(env.ctx);
      env.facts.tenantId = tenantId;
      if (sameTenant(current.tenantId, tenantId)) return { upToDate: true, detail: `already done: S2STenantId of ${name} is ${tenantId}` };
      return { upToDate: false, detail: `would set S2STenantId of ${name} to ${tenantId}${current.tenantId ? ` (now ${current.tenantId})` : ' (now unset)'}` };
    },
    async apply(env) {
      const { certs, name, tenantId, current } = await read(env.ctx);
      env.facts.tenantId = tenantId;
      if (sameTenant(current.tenantId, tenantId)) return { detail: `S2STenantId of ${name} is already ${tenantId}`, changed: false, wrote: false };
      await runScript(env.ctx, certs, 'Set-S2STenantId', { OrganizationName: name, TenantId: tenantId });
      const after = await runScript(env.ctx, certs, 'Get-S2STenantId', { OrganizationName: name });
      if (!sameTenant(after.tenantId, tenantId)) {
        throw new SetupError('STEP_FAILED', `S2STenantId of ${name} reads back as ${after.tenantId ?? 'unset'} after it was set to ${tenantId}.`, {
          hint: `Set it by hand on the Deployment Tools server (Set-CrmAdvancedSetting -ID ${after.organizationId} -ConfigurationEntityName Organization -Setting S2STenantId -Value ${tenantId}), check it with Get-CrmAdvancedSetting, then Resume.`,
        });
      }
      return { detail: `set S2STenantId of ${name} to ${tenantId}${current.tenantId ? ` (was ${current.tenantId})` : ''}`, changed: true, wrote: true };
    },
  };
}
