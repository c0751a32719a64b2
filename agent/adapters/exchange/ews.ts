import { isSetupError, SetupError } from '../../../core/setup-error.ts';
import {
  AFTER_SHUTDOWN_OPTIONS,
  CONFIRM_APP_ID,
  ewsDaysLeft,
  isAfterEwsShutdown,
  type EwsAccessReport,
} from '../../../jobs/ews-access.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { readSelection } from '../../jobs/mailboxes/selection.ts';
import { MAILBOX_EWS_BATCH, type PowershellOutput, type PowershellParams } from '../powershell/scripts.ts';

/**
 * EWS access in Exchange Online for CRM's server-side sync (shared/d365-contract.md, "EWS access in
 * Exchange Online"; docs/ews.md): read with Get-EwsAccess, allowed with Set-EwsAccess, mailboxes
 * enabled with Set-MailboxEws, all over Exchange Online PowerShell signed in app-only with the app
 * registration the agent uses for Graph and its certificate.
 */

export type ExchangeConnection = PowershellParams<'Get-EwsAccess'>;
export type EwsRead = PowershellOutput<'Get-EwsAccess'>;

const SAMPLE = 10;
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * Connect-ExchangeOnline's parameters: GRAPH_CLIENT_ID, the certificate's thumbprint
 * (EXO_CERT_THUMBPRINT or GRAPH_CLIENT_CERT_FILE's), the tenant's initial domain (EXO_ORGANIZATION,
 * else Graph /organization) and the cloud's environment name; CONFIG_MISSING names what to set.
 */
export async function exchangeConnection(ctx: JobContext): Promise<{ certs: ReadyCerts; connection: ExchangeConnection }> {
  const certs = requireCerts(ctx, ['graph']);
  const x = certs.exchange;
  const missing: string[] = [];
  if (!x.clientId) missing.push('GRAPH_CLIENT_ID');
  if (!x.certificateThumbprint) missing.push('EXO_CERT_THUMBPRINT (or GRAPH_CLIENT_CERT_FILE)');
  if (missing.length > 0 || !x.clientId || !x.certificateThumbprint) {
    throw new SetupError('CONFIG_MISSING', `Exchange Online PowerShell is not configured on the agent: set ${missing.join(', ')}.`, {
      hint: "Exchange Online PowerShell signs in app-only with a certificate, not a client secret: upload a certificate to the app registration (GRAPH_CLIENT_ID), grant it Exchange.ManageAsApp and the Exchange Administrator role, put the certificate in the agent account's store and set EXO_CERT_THUMBPRINT to its thumbprint, then run the command again.",
      details: { missing },
    });
  }
  const organization = x.organization ?? (await certs.graph().getInitialDomain());
  if (!organization) {
    throw new SetupError('CONFIG_MISSING', "The tenant's initial domain is not known: Graph /organization marks no domain as initial and EXO_ORGANIZATION is not set.", {
      hint: 'Set EXO_ORGANIZATION on the agent to the tenant\'s initial domain (<name>.onmicrosoft.com), restart it, then run the command again.',
      details: { missing: ['EXO_ORGANIZATION'] },
    });
  }
  return {
    certs,
    connection: { AppId: x.clientId, CertificateThumbprint: x.certificateThumbprint, Organization: organization, ExchangeEnvironmentName: x.environment },
  };
}

export interface EwsReportOptions {
  /** EWS_APP_ID. */
  appId: string;
  /** Lower-cased addresses of the mailboxes that matter (CRM's selection); null: every disabled mailbox of the tenant counts. */
  selection: ReadonlySet<string> | null;
  now: number;
}

const sameApp = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Whether Exchange Online lets CRM's app use EWS at organization level (mailboxes aside). */
export function ewsAllowedFor(read: Pick<EwsRead, 'organizationEnabled' | 'allowedAppIds'>, appId: string): boolean {
  return read.organizationEnabled === true && (read.allowedAppIds ?? []).some((id) => sameApp(id, appId));
}

/**
 * The older EwsApplicationAccessPolicy (user-agent lists) on top of the app-ID list:
 * EnforceAllowList with no user agent on it refuses every EWS client; a list of either kind may
 * refuse CRM's (which user agent CRM sends is unverified).
 */
export function olderEwsPolicy(read: Pick<EwsRead, 'applicationAccessPolicy' | 'allowList' | 'blockList'>): { allowListBlocksAll: boolean; olderPolicyApplies: boolean } {
  return {
    allowListBlocksAll: read.applicationAccessPolicy === 'EnforceAllowList' && read.allowList.length === 0,
    olderPolicyApplies: read.applicationAccessPolicy === 'EnforceAllowList' || (read.applicationAccessPolicy === 'EnforceBlockList' && read.blockList.length > 0),
  };
}

/** The report of what Get-EwsAccess read (pure: the cards' words come from here). */
export function ewsAccessReport(read: EwsRead, options: EwsReportOptions): EwsAccessReport {
  const daysLeft = ewsDaysLeft(options.now);
  const appAllowed = (read.allowedAppIds ?? []).some((id) => sameApp(id, options.appId));
  const disabled = read.disabledMailboxes.filter((a) => options.selection === null || options.selection.has(a.toLowerCase()));
  const base = {
    organizationEnabled: read.organizationEnabled,
    appId: options.appId,
    appAllowed,
    allowedAppIds: read.allowedAppIds ? read.allowedAppIds.slice(0, 100) : null,
    applicationAccessPolicy: read.applicationAccessPolicy,
    mailboxesChecked: options.selection?.size ?? 0,
    mailboxesDisabled: disabled.length,
    disabledSample: disabled.slice(0, SAMPLE),
    daysLeft,
  };
  const { allowListBlocksAll, olderPolicyApplies } = olderEwsPolicy(read);
  if (isAfterEwsShutdown(options.now)) {
    return { ...base, verdict: 'shut-down', detail: 'EWS in Exchange Online is switched off for good (since 1 April 2027): server-side sync from CRM on-premises to Exchange Online mailboxes cannot work.', fix: AFTER_SHUTDOWN_OPTIONS };
  }
  const left = `${daysLeft} day${daysLeft === 1 ? '' : 's'} left until EWS in Exchange Online is switched off for good (1 April 2027)`;
  const policy = allowListBlocksAll
    ? ' The older EwsApplicationAccessPolicy is EnforceAllowList with an empty EwsAllowList: it refuses every EWS client, CRM included.'
    : read.applicationAccessPolicy === 'EnforceAllowList'
      ? ` The older EwsApplicationAccessPolicy EnforceAllowList also applies (user agents ${clip(read.allowList.join(', '), 120)}): CRM's user agent must be on it.`
      : olderPolicyApplies
        ? ` The older EwsApplicationAccessPolicy EnforceBlockList also applies (user agents ${clip(read.blockList.join(', '), 120)}): CRM's must not be on it.`
        : '';
  const policyFix = olderPolicyApplies
    ? ' Check the older user-agent policy: add CRM\'s user agent to EwsAllowList (Set-OrganizationConfig -EwsAllowList) or set -EwsApplicationAccessPolicy $null, then test a mailbox.'
    : '';
  const truncated = read.disabledTruncated ? ' Exchange listed more mailboxes with EwsEnabled False than the agent reads (50,000): there may be more.' : '';
  const mailboxes =
    disabled.length > 0
      ? ` ${disabled.length} mailbox${disabled.length === 1 ? ' has' : 'es have'} EwsEnabled False on the mailbox itself (${disabled.slice(0, 3).join(', ')}${disabled.length > 3 ? ', …' : ''}): Exchange refuses EWS for ${disabled.length === 1 ? 'it' : 'them'} whatever the organization allows.`
      : '';
  const mailboxFix = disabled.length > 0 ? ' For the mailboxes: `@setup configure mailboxes` sets EwsEnabled $true on them (Set-CASMailbox).' : '';
  if (ewsAllowedFor(read, options.appId) && !allowListBlocksAll) {
    return {
      ...base,
      verdict: 'allowed',
      ...(olderPolicyApplies ? { olderPolicyApplies } : {}),
      detail: clip(`Exchange Online allows EWS for CRM (EwsEnabled True, ${options.appId} in EwsAllowedAppIDs); ${left}.${mailboxes}${truncated}${policy}`, 600),
      ...(mailboxFix || policyFix ? { fix: clip(`${mailboxFix.trim()}${policyFix} Plan the move before 1 April 2027: ${AFTER_SHUTDOWN_OPTIONS}`, 1200) } : {}),
    };
  }
  const why = [
    read.organizationEnabled !== true && `the organization's EwsEnabled is ${read.organizationEnabled === null ? 'not set' : 'False'}`,
    !appAllowed && `CRM's app ${options.appId} is not in EwsAllowedAppIDs${read.allowedAppIds && read.allowedAppIds.length > 0 ? ` (it lists ${read.allowedAppIds.length} other app${read.allowedAppIds.length === 1 ? '' : 's'})` : ' (the list is empty)'}`,
    allowListBlocksAll && 'EwsApplicationAccessPolicy is EnforceAllowList with an empty EwsAllowList',
  ].filter((w): w is string => typeof w === 'string');
  return {
    ...base,
    verdict: 'blocked',
    ...(olderPolicyApplies ? { olderPolicyApplies } : {}),
    detail: clip(`Exchange Online blocks EWS for CRM: ${why.join(' and ')}. Server-side sync fails with 403 (X-EWS-Policy-Reason) until it is allowed; ${left}.${mailboxes}${truncated}${allowListBlocksAll ? '' : policy}`, 600),
    // Only the older policy blocks: `ews allow` does not change it, so the fix is the policy's alone.
    fix: clip(
      ewsAllowedFor(read, options.appId)
        ? `${policyFix.trim()}${mailboxFix}`
        : `Run \`@setup ews allow\` (an approver confirms): it adds ${options.appId} to EwsAllowedAppIDs and sets EwsEnabled $true (Set-OrganizationConfig); Exchange can take up to 24 hours to apply it, then run Test & Enable again.${mailboxFix}${policyFix} ${CONFIRM_APP_ID}`,
      1200,
    ),
  };
}

/** The report when EWS could not be read: verdict unknown, the error as what was found, its hint as what to do. */
export function unknownEwsReport(error: unknown, appId: string, now: number): EwsAccessReport {
  const message = error instanceof Error ? error.message : String(error);
  const hint = isSetupError(error) ? error.hint : undefined;
  return {
    verdict: isAfterEwsShutdown(now) ? 'shut-down' : 'unknown',
    organizationEnabled: null,
    appId,
    appAllowed: null,
    allowedAppIds: null,
    applicationAccessPolicy: null,
    mailboxesChecked: 0,
    mailboxesDisabled: 0,
    disabledSample: [],
    daysLeft: ewsDaysLeft(now),
    detail: clip(`EWS access in Exchange Online cannot be checked: ${message}`, 600),
    fix: clip(isAfterEwsShutdown(now) ? AFTER_SHUTDOWN_OPTIONS : (hint ?? 'Check the Exchange Online settings of the agent (EXO_CERT_THUMBPRINT, EXO_ORGANIZATION, GRAPH_CLIENT_ID) and the ExchangeOnlineManagement module on its host, then try again.'), 1200),
  };
}

interface EwsReading {
  certs: ReadyCerts;
  connection: ExchangeConnection;
  read: EwsRead;
}

/**
 * One Get-EwsAccess per job, however many checks ask (preflight, the ews-access step and
 * configure-mailboxes of one plan): each run is an Exchange Online PowerShell sign-in, seconds on a
 * real host. Keyed by the job's CRM client scope (one per job, shared by the contexts a step derives
 * from it; the abort signal is the worker's, shared by every job); a change (Set-EwsAccess,
 * Set-MailboxEws) forgets it.
 */
const readings = new WeakMap<object, Promise<EwsReading>>();

export function readEws(ctx: JobContext): Promise<EwsReading> {
  let reading = readings.get(ctx.crm);
  if (!reading) {
    reading = (async () => {
      const { certs, connection } = await exchangeConnection(ctx);
      return { certs, connection, read: await runScript(ctx, certs, 'Get-EwsAccess', connection) };
    })();
    readings.set(ctx.crm, reading);
    // A failed read is not kept: the next check asks again (and says why it failed).
    reading.catch(() => readings.delete(ctx.crm));
  }
  return reading;
}

/** Reads EWS access (never throws for Exchange's or the configuration's sake: the report then says unknown, and why). */
export async function checkEwsAccess(ctx: JobContext, selection: ReadonlySet<string> | null): Promise<EwsAccessReport> {
  const appId = ctx.certs?.exchange.ewsAppId ?? '';
  try {
    const { certs, read } = await readEws(ctx);
    return ewsAccessReport(read, { appId: certs.exchange.ewsAppId, selection, now: ctx.now() });
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    ctx.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'EWS access could not be read');
    return unknownEwsReport(error, appId, ctx.now());
  }
}

/**
 * The rows whose Exchange Online mailbox has EwsEnabled False (one Get-EwsAccess for the tenant);
 * `unchecked` says why when Exchange Online cannot be read (the CRM part of a step still goes on).
 */
export async function mailboxesWithEwsDisabled<T extends { emailaddress: string }>(ctx: JobContext, rows: readonly T[]): Promise<{ rows: T[]; unchecked?: string }> {
  // A context built for the CRM steps alone has no PowerShell runner (the agent runtime always gives one).
  if (!ctx.certs) return { rows: [] };
  try {
    const { read } = await readEws(ctx);
    const disabled = new Set(read.disabledMailboxes.map((a) => a.toLowerCase()));
    return { rows: rows.filter((r) => r.emailaddress !== '' && disabled.has(r.emailaddress.toLowerCase())) };
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    return { rows: [], unchecked: clip(error instanceof Error ? error.message : String(error), 160) };
  }
}

/** Lower-cased addresses of the active mailboxes (the mailboxes whose EWS matters): one paged read. */
export async function activeMailboxAddresses(ctx: JobContext): Promise<Set<string>> {
  const rows = await readSelection(ctx.crm, { kind: 'all' });
  return new Set(rows.map((r) => r.emailaddress.toLowerCase()).filter((a) => a.length > 0));
}

/** Set-EwsAccess: allow-lists EWS_APP_ID and sets EwsEnabled $true (each only when needed); what changed. */
export async function allowEws(ctx: JobContext): Promise<PowershellOutput<'Set-EwsAccess'>> {
  const { certs, connection } = await exchangeConnection(ctx);
  readings.delete(ctx.crm);
  return runScript(ctx, certs, 'Set-EwsAccess', { ...connection, AllowAppId: certs.exchange.ewsAppId });
}

/** One address as Set-MailboxEws.ps1's -Mailboxes pattern takes it. */
const MAILBOX_ADDRESS = /^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/;

export interface MailboxEwsOutcome {
  enabled: string[];
  failed: { address: string; message: string }[];
}

/** Set-MailboxEws for `addresses`, MAILBOX_EWS_BATCH a run; one run failing as a whole fails the rest of its batch. */
export async function enableMailboxEws(ctx: JobContext, addresses: readonly string[]): Promise<MailboxEwsOutcome> {
  const outcome: MailboxEwsOutcome = { enabled: [], failed: [] };
  if (addresses.length === 0) return outcome;
  // Set-MailboxEws validates -Mailboxes as a whole: an address it would refuse is reported on its own, not with its batch.
  const valid = addresses.filter((a) => MAILBOX_ADDRESS.test(a));
  for (const address of addresses) {
    if (!MAILBOX_ADDRESS.test(address)) outcome.failed.push({ address, message: 'The address has characters Set-MailboxEws does not pass to Exchange Online: set EwsEnabled on this mailbox by hand (Set-CASMailbox -Identity <address> -EwsEnabled $true).' });
  }
  if (valid.length === 0) return outcome;
  const { certs, connection } = await exchangeConnection(ctx);
  readings.delete(ctx.crm);
  for (let i = 0; i < valid.length; i += MAILBOX_EWS_BATCH) {
    const batch = valid.slice(i, i + MAILBOX_EWS_BATCH);
    try {
      const out = await runScript(ctx, certs, 'Set-MailboxEws', { ...connection, Mailboxes: batch.join(',') });
      outcome.enabled.push(...out.enabled);
      outcome.failed.push(...out.failed);
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      const message = error instanceof Error ? error.message : String(error);
      outcome.failed.push(...batch.map((address) => ({ address, message })));
    }
  }
  return outcome;
}
