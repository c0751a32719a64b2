import { SetupError } from '../../../core/setup-error.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { requireCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { RunbookStep } from '../step.ts';
import { organizationName, requireRunbook } from './tenant-id.ts';

/**
 * adfs (procedure §9, only with SETUP_ADFS=on): nothing runs, since the agent may not run on the AD
 * FS server. The step produces the exact script (OAuth claims settings on the CRM server, the
 * Dynamics 365 App for Outlook as an AD FS client whose id is the organization id) and a checklist
 * entry. Every value is quoted as a PowerShell single-quoted literal.
 */

/** The journal data key of the script (a resumed run shows it again). */
export const ADFS_SCRIPT_KEY = 'adfsScript';

export const ADFS_CHECKLIST_ENTRY =
  'Run the AD FS script on the AD FS server (its first part on the CRM Deployment Tools server), then add the Dynamics 365 App for Outlook to the eligible users from CRM (it can take 15 minutes or more to appear).';

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * A PowerShell single-quoted string: every quote character PowerShell treats as one (' and the
 * typographic ‘ ’ ‚ ‛) is doubled. Control characters (a line break would end the command) are refused.
 */
export function psQuote(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new SetupError('INTERNAL', 'A value for the AD FS script holds a control character.');
  return `'${value.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`;
}

/** The script for the CRM and AD FS servers. */
export function adfsScript(organizationId: string, crmUrl: string): string {
  if (!GUID.test(organizationId)) throw new SetupError('INTERNAL', `'${organizationId.slice(0, 60)}' is not an organization id.`);
  const redirect = `${crmUrl.replace(/\/+$/, '')}/crmmailapp/code_auth.aspx`;
  return [
    '# 1. On the CRM server with the Deployment Tools role, in Windows PowerShell as a CRM deployment administrator:',
    'Add-PSSnapin Microsoft.Crm.PowerShell',
    '$s = Get-CrmSetting -SettingType OAuthClaimsSettings',
    '$s.Enabled = $true',
    'Set-CrmSetting -Setting $s',
    '',
    '# 2. On the AD FS server, in Windows PowerShell as an administrator (forms authentication must be enabled for the intranet):',
    `Add-AdfsClient -ClientId ${psQuote(organizationId.toLowerCase())} -Name ${psQuote('Dynamics 365 App for Outlook')} -RedirectUri ${psQuote(redirect)}`,
    '',
  ].join('\r\n');
}

/** The organization id: Get-S2STenantId's (Get-CrmOrganization), else WhoAmI's. */
async function organizationId(ctx: JobContext): Promise<string> {
  try {
    const certs = requireCerts(ctx, []);
    const out = await runScript(ctx, certs, 'Get-S2STenantId', { OrganizationName: organizationName(requireRunbook(ctx)) });
    if (GUID.test(out.organizationId)) return out.organizationId;
  } catch (error) {
    ctx.logger.warn({ err: (error as Error).message }, 'organization id not read with Get-CrmOrganization; using WhoAmI');
  }
  return (await ctx.crm.whoAmI()).OrganizationId;
}

export function adfsStep(): RunbookStep {
  return {
    id: 'adfs',
    check() {
      // Nothing is changed here: it never counts as a change of the plan.
      return Promise.resolve({ upToDate: true, detail: 'nothing runs here: the run ends with the script for the AD FS server and a checklist entry' });
    },
    async apply(env) {
      const settings = requireRunbook(env.ctx);
      const script = adfsScript(await organizationId(env.ctx), settings.CRM_URL);
      return { detail: 'the script for the AD FS server is in the results', changed: false, wrote: false, data: { [ADFS_SCRIPT_KEY]: script } };
    },
  };
}
