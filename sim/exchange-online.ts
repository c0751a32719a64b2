import type { PowershellOutput, PowershellScriptName } from '../agent/adapters/powershell/scripts.ts';
import { CRM_APP_ID } from './s2s-seed.ts';

/**
 * The simulated tenant's Exchange Online, as far as CRM's server-side sync meets it: the EWS access
 * policy (shared/d365-contract.md, "EWS access in Exchange Online") and what Exchange Online
 * PowerShell's app-only sign-in accepts. Test & Enable asks `ewsRefusal` whether Exchange refuses a
 * mailbox's EWS calls (then the mailbox fails with the 403 and its X-EWS-Policy-Reason); the
 * stand-ins of Get-EwsAccess, Set-EwsAccess and Set-MailboxEws read and change it.
 *
 * Exchange Online can take up to 24 hours to apply a policy change; the simulator applies it at
 * once (the agent says so on its cards either way).
 */
export interface SimExchangeOnline {
  /** The tenant's initial domain (Connect-ExchangeOnline -Organization; Graph /organization verifiedDomains isInitial). */
  initialDomain: string;
  /** Thumbprints of the app registration's certificates Exchange Online accepts for app-only sign-in. */
  appCertificateThumbprints: string[];
  /** The app holds Exchange.ManageAsApp and an Exchange role (Exchange Administrator). */
  appCanManage: boolean;
  /** Organization EwsEnabled ($null: unset). */
  ewsEnabled: boolean | null;
  /** EwsAllowedAppIDs (null: no list). */
  ewsAllowedAppIds: string[] | null;
  ewsApplicationAccessPolicy: 'EnforceAllowList' | 'EnforceBlockList' | null;
  ewsAllowList: string[];
  ewsBlockList: string[];
  /** Lower-cased addresses whose CASMailbox EwsEnabled is $false. */
  mailboxEwsDisabled: Set<string>;
}

/** The demo's app certificate for Exchange Online PowerShell (EXO_CERT_THUMBPRINT of the simulated agent). */
export const SIM_EXO_CERT_THUMBPRINT = '5E0C1F2A3B4C5D6E7F8091A2B3C4D5E6F7081920';
export const SIM_INITIAL_DOMAIN = 'contoso.onmicrosoft.com';
/** Apps Microsoft's September 2026 pre-population put on a tenant's list from observed usage (illustrative ids). */
export const PREPOPULATED_APP_IDS = ['d3590ed6-52b3-4102-aeff-aad2292ab01c', '27922004-5251-4030-b22d-91ecd9a37ea4'] as const;

/**
 * configured: the tenant allows EWS for CRM (EwsEnabled true, CRM allow-listed). blocked: as a
 * tenant that never acted is since 1 October 2026: EwsEnabled switched to false and a pre-populated
 * allow-list without CRM.
 */
export function seedExchangeOnline(policy: 'configured' | 'blocked'): SimExchangeOnline {
  return {
    initialDomain: SIM_INITIAL_DOMAIN,
    appCertificateThumbprints: [SIM_EXO_CERT_THUMBPRINT],
    appCanManage: true,
    ewsEnabled: policy === 'configured',
    ewsAllowedAppIds: policy === 'configured' ? [...PREPOPULATED_APP_IDS, CRM_APP_ID] : [...PREPOPULATED_APP_IDS],
    ewsApplicationAccessPolicy: null,
    ewsAllowList: [],
    ewsBlockList: [],
    mailboxEwsDisabled: new Set(),
  };
}

export type EwsRefusal = { reason: 'disabled' | 'not-allowed'; policyReason: string };

/**
 * Whether Exchange Online refuses the EWS calls CRM (app `appId`) makes for `address`, and the
 * X-EWS-Policy-Reason it answers with (the "blocked by policy" wording is unverified).
 */
export function ewsRefusal(exchange: SimExchangeOnline, address: string, appId: string = CRM_APP_ID): EwsRefusal | null {
  if (exchange.ewsEnabled !== true || exchange.mailboxEwsDisabled.has(address.toLowerCase())) {
    return { reason: 'disabled', policyReason: 'EWS is disabled for this user or tenant' };
  }
  if (!(exchange.ewsAllowedAppIds ?? []).some((id) => id.toLowerCase() === appId.toLowerCase())) {
    return { reason: 'not-allowed', policyReason: `EWS access for the application ${appId} is blocked by policy: it is not in the organization's EWS allow-list` };
  }
  // The older user-agent policy on top: EnforceAllowList with an empty list refuses every client (what CRM's user agent is, is unverified).
  if (exchange.ewsApplicationAccessPolicy === 'EnforceAllowList' && exchange.ewsAllowList.length === 0) {
    return { reason: 'not-allowed', policyReason: 'EWS access is blocked by policy: EwsApplicationAccessPolicy EnforceAllowList allows no client' };
  }
  return null;
}

export class ExchangeScriptError extends Error {}

const ENVIRONMENT = 'O365Default';

/** Connect-ExchangeOnline -AppId -CertificateThumbprint -Organization -ExchangeEnvironmentName, app-only (error wording unverified). */
function connect(exchange: SimExchangeOnline, script: string, params: Record<string, string>, appClientId: string): void {
  const fail = (message: string): never => {
    throw new ExchangeScriptError(`${script}: ${message}`);
  };
  if ((params.ExchangeEnvironmentName ?? '') !== ENVIRONMENT) fail(`Connect-ExchangeOnline : The tenant is not in the ${params.ExchangeEnvironmentName ?? ''} environment: use -ExchangeEnvironmentName ${ENVIRONMENT}.`);
  if ((params.AppId ?? '').toLowerCase() !== appClientId.toLowerCase()) fail(`Connect-ExchangeOnline : AADSTS700016: Application with identifier '${params.AppId ?? ''}' was not found in the directory '${exchange.initialDomain}'.`);
  if (!exchange.appCertificateThumbprints.includes((params.CertificateThumbprint ?? '').toUpperCase())) {
    fail(`Connect-ExchangeOnline : No certificate with the thumbprint ${params.CertificateThumbprint ?? ''} is in the certificate store of this account, or it is not a credential of the application (AADSTS700027).`);
  }
  if ((params.Organization ?? '').toLowerCase() !== exchange.initialDomain) fail(`Connect-ExchangeOnline : AADSTS90002: Tenant '${params.Organization ?? ''}' not found.`);
  if (!exchange.appCanManage) fail('Connect-ExchangeOnline : The role assigned to application ' + appClientId + " isn't supported in this scenario: grant it Exchange.ManageAsApp and the Exchange Administrator role.");
}

type ExchangeScript = 'Get-EwsAccess' | 'Set-EwsAccess' | 'Set-MailboxEws';
type ExchangeHandler<N extends PowershellScriptName> = (exchange: SimExchangeOnline, params: Record<string, string>, appClientId: string) => PowershellOutput<N>;

/** The stand-ins of the Exchange Online scripts (sim/powershell-api.ts dispatches to them). */
export const exchangeOnlineHandlers: { [N in ExchangeScript]: ExchangeHandler<N> } = {
  'Get-EwsAccess': (exchange, params, appClientId) => {
    connect(exchange, 'Get-EwsAccess', params, appClientId);
    return {
      organizationEnabled: exchange.ewsEnabled,
      allowedAppIds: exchange.ewsAllowedAppIds ? [...exchange.ewsAllowedAppIds] : null,
      applicationAccessPolicy: exchange.ewsApplicationAccessPolicy,
      allowList: [...exchange.ewsAllowList],
      blockList: [...exchange.ewsBlockList],
      disabledMailboxes: [...exchange.mailboxEwsDisabled],
      disabledTruncated: false,
    };
  },
  'Set-EwsAccess': (exchange, params, appClientId) => {
    connect(exchange, 'Set-EwsAccess', params, appClientId);
    const appId = (params.AllowAppId ?? '').toLowerCase();
    const changed: ('EwsAllowedAppIDs' | 'EwsEnabled')[] = [];
    const list = exchange.ewsAllowedAppIds ?? [];
    if (!list.some((id) => id.toLowerCase() === appId)) {
      exchange.ewsAllowedAppIds = [...list, appId];
      changed.push('EwsAllowedAppIDs');
    }
    if (exchange.ewsEnabled !== true) {
      exchange.ewsEnabled = true;
      changed.push('EwsEnabled');
    }
    return { organizationEnabled: exchange.ewsEnabled, allowedAppIds: [...exchange.ewsAllowedAppIds ?? []], changed };
  },
  'Set-MailboxEws': (exchange, params, appClientId) => {
    connect(exchange, 'Set-MailboxEws', params, appClientId);
    const enabled: string[] = [];
    const alreadyEnabled: string[] = [];
    for (const address of (params.Mailboxes ?? '').split(',')) {
      if (exchange.mailboxEwsDisabled.delete(address.toLowerCase())) enabled.push(address);
      else alreadyEnabled.push(address);
    }
    return { enabled, alreadyEnabled, failed: [] };
  },
};
