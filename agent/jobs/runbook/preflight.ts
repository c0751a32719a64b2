import { z } from 'zod';
import { isSetupError } from '../../../core/setup-error.ts';
import type { EwsAccessReport } from '../../../jobs/ews-access.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { preflightTitles, type PreflightCheck, type PreflightCheckId, type PreflightResult } from '../../../jobs/runbook-types.ts';
import { DUPLICATE_SUBJECT_FIX, machineCert, type MachineCert } from '../../steps/cert/import.ts';
import { listServers } from '../../steps/cert/common.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { WhoAmI } from '../../adapters/crm/client.ts';
import { REQUIRED_GRAPH_ROLES } from '../../adapters/graph/api.ts';
import { activeMailboxAddresses, checkEwsAccess, unknownEwsReport } from '../../adapters/exchange/ews.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { certServicesOf, chooseCertificate, describeChoice, type CertChoice } from '../../steps/runbook/certificate.ts';

/**
 * The runbook's preflight (docs/runbook.md, "Preflight"): read-only checks of what the procedure
 * needs before it changes anything (procedure.md §0, §1). Each failed check says what was found and
 * what to do; a check that cannot run for missing configuration names the variable to set.
 */

export const SYSTEM_ADMINISTRATOR = 'System Administrator';
const ASYNC_SERVICES = ['MSCRMAsyncService', 'MSCRMAsyncService$maintenance'] as const;

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const reason = (error: unknown) => (error instanceof Error ? error.message : String(error));
const hintOf = (error: unknown) => (isSetupError(error) ? error.hint : undefined);

export interface PreflightOutcome {
  checks: PreflightCheck[];
  ok: boolean;
  /** WhoAmI when CRM answered. */
  whoAmI: WhoAmI | null;
  /** The certificate the runbook would use (null when the certificate services are not configured). */
  choice: CertChoice | null;
  /** The Graph tenant when the credentials work. */
  tenantId: string | null;
  /** EWS access in Exchange Online (the ews-access and ews-mailboxes checks). */
  ews: EwsAccessReport;
}

const roleRowSchema = z.object({ name: z.string().nullable().optional(), roleid: z.string().optional() }).passthrough();

/**
 * The agent's CRM roles: GET systemusers(<WhoAmI.UserId>)/systemuserroles_association?$select=name,roleid
 * (the systemuser ↔ role relationship of the Web API). The id is WhoAmI's GUID, never input.
 */
export async function crmRoleNames(ctx: JobContext, userId: string): Promise<string[]> {
  const names: string[] = [];
  const pages = ctx.crm.getAll('systemusers', { select: ['name', 'roleid'], schema: roleRowSchema, related: { id: userId, navigation: 'systemuserroles_association' } });
  for await (const page of pages) for (const role of page) if (role.name) names.push(role.name);
  return names;
}

export async function runPreflight(ctx: JobContext): Promise<PreflightOutcome> {
  const checks = new Map<PreflightCheckId, PreflightCheck>();
  const set = (id: PreflightCheckId, status: PreflightCheck['status'], detail: string, fix?: string) =>
    checks.set(id, { id, status, detail: clip(detail, 400), ...(fix === undefined || status === 'ok' ? {} : { fix: clip(fix, 600) }) });

  // ---- CRM ----
  let whoAmI: WhoAmI | null = null;
  try {
    whoAmI = await ctx.crm.whoAmI();
    set('crm-reachable', 'ok', `CRM answered WhoAmI: the agent is user ${whoAmI.UserId}`);
  } catch (error) {
    set('crm-reachable', 'failed', `CRM cannot be reached: ${reason(error)}`, hintOf(error) ?? "Check CRM_URL and the agent's CRM account (CRM_AUTH, CRM_USERNAME, CRM_DOMAIN, CRM_PASSWORD), then run preflight again.");
  }
  if (!whoAmI) {
    set('crm-admin-role', 'failed', 'Cannot be checked: CRM is not reachable.', 'Fix the CRM connection first (the check above).');
  } else {
    try {
      const roles = await crmRoleNames(ctx, whoAmI.UserId);
      if (roles.some((r) => r.toLowerCase() === SYSTEM_ADMINISTRATOR.toLowerCase())) set('crm-admin-role', 'ok', `the agent's CRM user has the ${SYSTEM_ADMINISTRATOR} role`);
      else {
        set(
          'crm-admin-role',
          'failed',
          `The agent's CRM user (${whoAmI.UserId}) does not have the ${SYSTEM_ADMINISTRATOR} role${roles.length > 0 ? ` (it has ${roles.slice(0, 5).join(', ')})` : ''}.`,
          `In CRM, Settings → Security → Users, open the agent's account and Manage Roles: add ${SYSTEM_ADMINISTRATOR}. Then run preflight again.`,
        );
      }
    } catch (error) {
      set('crm-admin-role', 'failed', `The agent's CRM roles cannot be read: ${reason(error)}`, hintOf(error) ?? `Give the agent's CRM account the ${SYSTEM_ADMINISTRATOR} role (it can then read its own roles), then run preflight again.`);
    }
  }

  // ---- this host ----
  const certs: ReadyCerts | null = ctx.certs ? certServicesOf(ctx) : null;
  if (!certs) {
    set('local-admin', 'failed', 'Cannot be checked: the agent was started without its PowerShell runner.', 'Start the agent with npm run agent (agent/main.ts).');
  } else {
    try {
      const out = await runScript(ctx, certs, 'Test-LocalAdministrator', {});
      if (out.isAdministrator) set('local-admin', 'ok', `the agent runs as ${out.user}, a local administrator`);
      else set('local-admin', 'failed', `The agent runs as ${out.user}, which is not a local administrator of this server.`, 'Run the agent service as an account in the local Administrators group of the Deployment Tools server and of every async server (the certificate and service steps need it), then run preflight again.');
    } catch (error) {
      set('local-admin', 'failed', `Test-LocalAdministrator failed: ${reason(error)}`, hintOf(error) ?? 'Check POWERSHELL on the agent (Windows PowerShell 5.1), then run preflight again.');
    }
  }

  // ---- Graph ----
  let tenantId: string | null = null;
  const graphMissing = certs?.graphMissing ?? ['GRAPH_TENANT_ID', 'GRAPH_CLIENT_ID', 'GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERT_FILE'];
  if (!certs || graphMissing.length > 0) {
    const fix = `Set ${graphMissing.join(', ')} on the agent (the helper app registration, see .env.example), restart it, then run preflight again.`;
    set('graph-credentials', 'failed', 'Microsoft Graph is not configured on the agent.', fix);
    set('graph-permissions', 'failed', 'Cannot be checked: Microsoft Graph is not configured.', fix);
  } else {
    try {
      tenantId = (await certs.graph().getTenantId()).toLowerCase();
      set('graph-credentials', 'ok', `signed in to Microsoft Graph; tenant ${tenantId}`);
    } catch (error) {
      set('graph-credentials', 'failed', `Microsoft Graph refused the agent: ${reason(error)}`, hintOf(error) ?? 'Check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and the credential on the agent.');
    }
    try {
      const roles = await certs.graph().grantedRoles();
      const missing = REQUIRED_GRAPH_ROLES.filter((r) => !roles.some((g) => g.toLowerCase() === r.toLowerCase()));
      if (missing.length === 0) set('graph-permissions', 'ok', `the app holds ${REQUIRED_GRAPH_ROLES.join(' and ')}`);
      else {
        set(
          'graph-permissions',
          'failed',
          `The app's token lacks the application permission${missing.length > 1 ? 's' : ''} ${missing.join(' and ')}.`,
          `In the Entra admin center, App registrations → the app (GRAPH_CLIENT_ID) → API permissions → Add a permission → Microsoft Graph → Application permissions: ${missing.join(', ')}; then Grant admin consent for the tenant. Run preflight again.`,
        );
      }
    } catch (error) {
      if (tenantId === null) set('graph-permissions', 'failed', 'Cannot be checked: the Graph credentials do not work.', 'Fix the Graph credentials first (the check above).');
      else set('graph-permissions', 'warning', `The granted permissions cannot be read from the token: ${reason(error)}`, hintOf(error) ?? `Check in the Entra admin center that the app holds ${REQUIRED_GRAPH_ROLES.join(' and ')} with admin consent.`);
    }
  }

  // ---- Exchange Online: EWS (blocked since 1 October 2026 unless allowed; off for good on 1 April 2027) ----
  let addresses: Set<string> | null = null;
  if (whoAmI) {
    try {
      addresses = await activeMailboxAddresses(ctx);
    } catch (error) {
      ctx.logger.warn({ err: reason(error) }, 'the mailbox addresses could not be read for the EWS check');
    }
  }
  const ews = certs ? await checkEwsAccess(ctx, addresses) : unknownEwsReport(new Error('the agent was started without its PowerShell runner.'), '', ctx.now());
  setEwsChecks(ews, set);

  // ---- certificate ----
  let choice: CertChoice | null = null;
  if (!certs) {
    set('certificate', 'failed', 'Cannot be checked: the agent was started without its certificate services.', 'Start the agent with npm run agent.');
  } else {
    try {
      choice = await chooseCertificate(ctx, certs);
      const cert = choice.cert;
      if (!cert || cert.errors.length > 0) set('certificate', 'failed', choice.problem?.message ?? 'No usable certificate.', choice.problem?.fix ?? 'Set CERT_DIR and CERT_NEW_PFX on the agent.');
      else {
        const warnings = cert.summary.problems.filter((p) => p.severity !== 'error');
        if (warnings.length > 0) set('certificate', 'warning', `${describeChoice(cert)}: ${warnings.map((w) => w.message).join('; ')}`, warnings.map((w) => w.fix).join(' '));
        else set('certificate', 'ok', `the runbook uses ${describeChoice(cert)}`);
      }
    } catch (error) {
      set('certificate', 'failed', `The registered certificate cannot be read: ${reason(error)}`, hintOf(error) ?? 'Check that the agent runs on the Deployment Tools server with the Microsoft.Crm.PowerShell snap-in.');
    }
  }

  // ---- servers ----
  const serverMissing = certs ? [...(certs.servers.length === 0 ? ['ASYNC_SERVERS'] : []), ...(certs.serviceAccount ? [] : ['ASYNC_SERVICE_ACCOUNT'])] : ['ASYNC_SERVERS', 'ASYNC_SERVICE_ACCOUNT'];
  if (!certs || serverMissing.length > 0) {
    const fix = `Set ${serverMissing.join(' and ')} on the agent (the servers that run the Asynchronous Processing Service, and its account as DOMAIN\\user), restart it, then run preflight again.`;
    set('certificate-servers', 'failed', 'The async servers are not configured.', fix);
    set('async-services', 'failed', 'The async servers are not configured.', fix);
  } else {
    await checkServers(ctx, certs, choice, set);
  }

  const ordered = [...checks.values()];
  return { checks: ordered, ok: ordered.every((c) => c.status !== 'failed'), whoAmI, choice, tenantId, ews };
}

/**
 * The two EWS checks: ews-access fails only after the shutdown (nothing fixes it then); blocked is
 * a warning, since the runbook's ews-access step (or `ews allow`) fixes it, and unknown is a warning
 * that says what to set. Never ok unless Exchange Online allows EWS for CRM.
 */
function setEwsChecks(ews: EwsAccessReport, set: (id: PreflightCheckId, status: PreflightCheck['status'], detail: string, fix?: string) => void): void {
  const status = ews.verdict === 'allowed' && ews.olderPolicyApplies !== true ? 'ok' : ews.verdict === 'shut-down' ? 'failed' : 'warning';
  set('ews-access', status, ews.detail, ews.fix);
  if (ews.verdict === 'unknown') set('ews-mailboxes', 'warning', 'Cannot be checked: EWS access in Exchange Online cannot be read (the check above).', ews.fix);
  else if (ews.verdict === 'shut-down') set('ews-mailboxes', 'failed', 'EWS in Exchange Online is switched off for good (since 1 April 2027).', ews.fix);
  else if (ews.mailboxesDisabled > 0) {
    set(
      'ews-mailboxes',
      'warning',
      `${ews.mailboxesDisabled} mailbox${ews.mailboxesDisabled === 1 ? ' has' : 'es have'} EwsEnabled False in Exchange Online: ${ews.disabledSample.join(', ')}${ews.mailboxesDisabled > ews.disabledSample.length ? ', …' : ''}.`,
      'Nothing to do before `run setup`: its configure-mailboxes step sets EwsEnabled $true on them (Set-CASMailbox); on its own, `@setup configure mailboxes` does the same.',
    );
  } else set('ews-mailboxes', 'ok', ews.mailboxesChecked > 0 ? `none of the ${ews.mailboxesChecked} active mailboxes has EwsEnabled False` : 'no mailbox of the tenant has EwsEnabled False');
}

async function checkServers(
  ctx: JobContext,
  certs: ReadyCerts,
  choice: CertChoice | null,
  set: (id: PreflightCheckId, status: PreflightCheck['status'], detail: string, fix?: string) => void,
): Promise<void> {
  const cert = choice?.cert ?? null;
  const unreachable: string[] = [];
  const machines = new Map<string, MachineCert>();
  for (const server of certs.servers) {
    try {
      machines.set(
        server,
        cert
          ? await machineCert(ctx, certs, server, { thumbprint: cert.summary.thumbprint, derBase64: cert.derBase64 })
          : // Without a certificate the store has nothing to look for (an all-zero thumbprint, an empty subject Name); the services are read all the same.
            await runScript(ctx, certs, 'Get-MachineCertificate', { ComputerName: server, Thumbprint: '0'.repeat(40), SubjectDer: 'MAA=', ServiceAccount: certs.serviceAccount }),
      );
    } catch (error) {
      unreachable.push(`${server} (${clip(reason(error), 80)})`);
    }
  }
  const unreachableFix = 'Check that the agent can reach these servers with PowerShell remoting (WinRM) as a local administrator, then run preflight again.';

  if (!cert) set('certificate-servers', 'failed', 'Cannot be checked: there is no certificate to look for.', 'Fix the certificate first (the check above).');
  else if (unreachable.length > 0) set('certificate-servers', 'failed', `Cannot read the certificate store on ${unreachable.join(', ')}.`, unreachableFix);
  else {
    const duplicate = [...machines].filter(([, m]) => m.duplicateSubject).map(([s]) => s);
    const absent = [...machines].filter(([, m]) => !(m.found && m.hasPrivateKey)).map(([s]) => s);
    const wrongSpec = [...machines].filter(([, m]) => m.found && m.hasPrivateKey && m.keySpec !== 1).map(([s]) => s);
    const noAccess = [...machines].filter(([, m]) => m.found && m.hasPrivateKey && !m.serviceAccountCanRead).map(([s]) => s);
    const importable = cert.pfx !== null;
    if (duplicate.length > 0) set('certificate-servers', 'failed', `Another certificate with the subject of ${cert.summary.thumbprint} is in LocalMachine\\My on ${listServers(duplicate)}.`, DUPLICATE_SUBJECT_FIX);
    else if ((absent.length > 0 || wrongSpec.length > 0) && !importable) {
      const where = listServers([...absent, ...wrongSpec]);
      set(
        'certificate-servers',
        'failed',
        `The registered certificate ${cert.summary.thumbprint} is ${absent.length > 0 ? 'not' : 'not with KeySpec 1'} on ${where}, and ${certs.settings.CERT_NEW_PFX} in CERT_DIR is not that certificate.`,
        `Put the registered certificate's PFX in CERT_DIR as ${certs.settings.CERT_NEW_PFX} (the runbook then imports it), or import it on ${where} with certutil -importpfx <file> AT_KEYEXCHANGE.`,
      );
    } else if (absent.length > 0 || wrongSpec.length > 0 || noAccess.length > 0) {
      set(
        'certificate-servers',
        'warning',
        [absent.length > 0 && `not yet on ${listServers(absent)}`, wrongSpec.length > 0 && `KeySpec is not 1 on ${listServers(wrongSpec)}`, noAccess.length > 0 && `${certs.serviceAccount} cannot read the key yet on ${listServers(noAccess)}`]
          .filter((p): p is string => typeof p === 'string')
          .join('; '),
        'Nothing to do: the runbook imports the certificate with KeySpec 1 and grants the service account Read on its key.',
      );
    } else set('certificate-servers', 'ok', `${cert.summary.thumbprint} is on ${listServers(certs.servers)} with KeySpec 1 and key access for ${certs.serviceAccount}`);
  }

  if (unreachable.length > 0) set('async-services', 'failed', `Cannot read the services on ${unreachable.join(', ')}.`, unreachableFix);
  else {
    const stopped: string[] = [];
    for (const [server, m] of machines) {
      for (const name of ASYNC_SERVICES) {
        const service = m.services.find((s) => s.name.toLowerCase() === name.toLowerCase());
        if (!service || service.status !== 'Running') stopped.push(`${name} on ${server} is ${service?.status ?? 'not installed'}`);
      }
    }
    if (stopped.length > 0) {
      set('async-services', 'failed', `${stopped.slice(0, 4).join('; ')}${stopped.length > 4 ? ` and ${stopped.length - 4} more` : ''}.`, "Start MSCRMAsyncService and 'MSCRMAsyncService$maintenance' on those servers (services.msc or Start-Service; the server's Application event log says why one stopped), then run preflight again.");
    } else set('async-services', 'ok', `both async services run on ${listServers(certs.servers)}`);
  }
}

/** `preflight` job: read-only. */
export async function preflightJob(payload: PayloadOf<'preflight'>, ctx: JobContext): Promise<PreflightResult> {
  const outcome = await runPreflight(ctx);
  ctx.logger.info({ runId: payload.runId, ok: outcome.ok, failed: outcome.checks.filter((c) => c.status === 'failed').map((c) => c.id) }, 'preflight finished');
  return { type: 'preflight', checks: outcome.checks, ok: outcome.ok, ews: outcome.ews };
}

/** "crm-admin-role: …": the check's title and what was found (plan blockers, the preflight step's error). */
export function describeCheck(check: PreflightCheck): string {
  return clip(`${preflightTitles[check.id]}: ${check.detail}`, 400);
}
