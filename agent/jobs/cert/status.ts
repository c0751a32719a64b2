import { SetupError, isSetupError } from '../../../core/setup-error.ts';
import type { CertStatusResult, CertSummary, EntraState, ServerCertState } from '../../../jobs/cert-types.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { machineCert } from '../../steps/cert/import.ts';
import { readRegistered, type Registered } from '../../steps/cert/register-crm.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import { CRM_APP_ID, S2S_AUTHORITY_PRINCIPAL_ID } from '../../adapters/graph/api.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { isCurrent, keyCredentialInfo, thumbprintOfKeyCredential } from '../../adapters/graph/key-credentials.ts';

type Finding = CertStatusResult['findings'][number];

const DAY_MS = 24 * 60 * 60_000;
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const reason = (error: unknown) => clip(error instanceof Error ? error.message : String(error), 300);

/**
 * `cert-status` (`@setup cert status`, and the expiry watch): the registered S2S certificate, each
 * async server's store, the CRM service principal's key credentials and the S2S settings, whether
 * they agree, the days left, and every disagreement with what to do. A part that cannot be read is
 * a finding on the card, not a failed job, unless nothing at all can be read.
 */
export async function certStatus(_payload: PayloadOf<'cert-status'>, ctx: JobContext): Promise<CertStatusResult> {
  const certs = requireCerts(ctx, ['servers']);
  const now = ctx.now();
  const findings: Finding[] = [];
  const find = (message: string, fix: string) => findings.push({ message: clip(message, 300), fix: clip(fix, 400) });
  const failures: unknown[] = [];
  let reads = 0;

  // ---- CRM registration ----
  let registered: Registered | null = null;
  let summary: CertSummary | null = null;
  let registrationKnown = false;
  try {
    registered = await readRegistered(ctx, certs);
    reads += 1;
    if (registered) summary = certs.kit.summarizeDer(registered.derBase64, { now, minDaysLeft: certs.settings.CERT_MIN_DAYS_LEFT });
    registrationKnown = true;
  } catch (error) {
    failures.push(error);
    find(
      `The S2S certificate registered in CRM cannot be read, so which certificate CRM signs with is unknown and the servers' stores were not checked against it: ${reason(error)}`,
      'Check that the agent can run the Microsoft.Crm.PowerShell snap-in (Get-CrmCertificate) as a CRM deployment administrator, then run @setup cert status again.',
    );
  }
  const thumbprint = registered?.thumbprint ?? null;
  const daysLeft = summary ? Math.floor((Date.parse(summary.notAfter) - now) / DAY_MS) : null;
  if (registrationKnown && !registered) find('No certificate is registered as S2STokenIssuer in CRM.', 'Rotate to a certificate (@setup cert rotate <file>): the rotation registers it.');
  if (summary && daysLeft !== null) {
    if (daysLeft < 0) find(`The registered certificate expired on ${summary.notAfter.slice(0, 10)}: server-side sync cannot authenticate.`, 'Rotate to a new certificate now (@setup cert rotate <file>).');
    else if (daysLeft < certs.settings.CERT_MIN_DAYS_LEFT) find(`The registered certificate expires in ${daysLeft} days (${summary.notAfter.slice(0, 10)}).`, 'Put a new PFX in the agent\'s CERT_DIR and rotate (@setup cert rotate <file>).');
  }

  // ---- servers ----
  const servers: ServerCertState[] = [];
  for (const server of certs.servers) {
    const state = await serverState(ctx, certs, server, registered, summary, failures, find);
    if (state.error === undefined && thumbprint !== null) reads += 1;
    servers.push(state);
  }

  // ---- Entra ----
  let entra: EntraState | null = null;
  let entraOk = false;
  if (certs.graphMissing.length > 0) {
    find('The Entra ID key credentials were not checked: Graph is not configured on the agent.', `Set ${certs.graphMissing.join(', ')} on the agent and restart it.`);
  } else {
    try {
      const sp = await certs.graph().getCrmServicePrincipal();
      reads += 1;
      entra = {
        servicePrincipalId: sp.id.slice(0, 64),
        spnPresent: sp.servicePrincipalNames.includes(CRM_APP_ID),
        keyCredentials: sp.keyCredentials.slice(0, 50).map(keyCredentialInfo),
      };
      const match = thumbprint === null ? undefined : sp.keyCredentials.find((k) => thumbprintOfKeyCredential(k) === thumbprint);
      entraOk = match !== undefined && isCurrent(match, now) && entra.spnPresent;
      if (thumbprint !== null && !match) find(`The registered certificate ${thumbprint} is not a key credential of the CRM service principal in Entra ID: Exchange Online rejects its tokens.`, 'Rotate to it again (@setup cert rotate): the entra-key-credential step adds it.');
      else if (match && !isCurrent(match, now)) find(`The key credential of ${thumbprint ?? ''} in Entra ID is not valid now (${match.startDateTime ?? '?'} to ${match.endDateTime ?? '?'}).`, 'Rotate to a new certificate (@setup cert rotate <file>).');
      if (!entra.spnPresent) find(`The CRM service principal's servicePrincipalNames lack the bare appId ${CRM_APP_ID}.`, 'A rotation adds it (entra-key-credential step); or add it with Microsoft Graph.');
      const expired = sp.keyCredentials.filter((k) => k.endDateTime !== null && Date.parse(k.endDateTime) <= now).length;
      if (expired > 0) find(`${expired} expired key credential${expired === 1 ? '' : 's'} on the CRM service principal.`, 'The next rotation drops them (read-merge-write); nothing else to do.');
    } catch (error) {
      failures.push(error);
      find(`Entra ID cannot be read: ${reason(error)}`, graphFix(error));
    }
  }

  // ---- S2S settings ----
  let serverSettings: CertStatusResult['serverSettings'] = { principalId: null, metadataUrl: null };
  let settingsOk = false;
  try {
    const s = await runScript(ctx, certs, 'Get-S2SServerSettings', {});
    reads += 1;
    serverSettings = { principalId: s.principalId === null ? null : clip(s.principalId, 80), metadataUrl: s.metadataUrl === null ? null : clip(s.metadataUrl, 300) };
    settingsOk = s.principalId === S2S_AUTHORITY_PRINCIPAL_ID && s.metadataUrl === certs.metadataUrl;
    if (s.principalId !== S2S_AUTHORITY_PRINCIPAL_ID) find(`S2SDefaultAuthorizationServerPrincipalId is ${s.principalId ?? 'not set'}, not ${S2S_AUTHORITY_PRINCIPAL_ID}.`, 'A rotation sets it (s2s-settings step), or Set-CrmAdvancedSetting on the ServerSettings entity.');
    if (s.metadataUrl !== certs.metadataUrl) find(`S2SDefaultAuthorizationServerMetadataUrl is ${s.metadataUrl ?? 'not set'}, not ${certs.metadataUrl} (CLOUD=${certs.settings.CLOUD}).`, 'A rotation sets it (s2s-settings step); check CLOUD on the agent if the value is right.');
  } catch (error) {
    failures.push(error);
    find(`The S2S server settings cannot be read: ${reason(error)}`, 'Check that the agent can run Get-CrmAdvancedSetting as a CRM deployment administrator.');
  }

  if (reads === 0 && failures.length > 0) {
    const first = failures[0];
    throw isSetupError(first) ? first : new SetupError('STEP_FAILED', reason(first), { cause: first });
  }

  const serversOk = servers.length > 0 && servers.every((s) => s.error === undefined && s.found && s.hasPrivateKey && s.keySpec === 1 && s.serviceAccountCanRead);
  const result: CertStatusResult = {
    type: 'cert-status',
    // false: `registered: null` means "unknown" (the finding says it could not be read), not "none".
    registrationRead: registrationKnown,
    registered: summary,
    servers,
    entra,
    serverSettings,
    agree: summary !== null && daysLeft !== null && daysLeft >= 0 && serversOk && entraOk && settingsOk,
    daysLeft,
    findings: findings.slice(0, 30),
  };
  ctx.logger.info({ agree: result.agree, daysLeft, registrationRead: result.registrationRead, findings: findings.length }, 'certificate status read');
  return result;
}

async function serverState(
  ctx: JobContext,
  certs: ReadyCerts,
  server: string,
  registered: Registered | null,
  summary: CertSummary | null,
  failures: unknown[],
  find: (message: string, fix: string) => void,
): Promise<ServerCertState> {
  const thumbprint = registered?.thumbprint ?? null;
  const empty: ServerCertState = { server, thumbprint, found: false, keySpec: null, hasPrivateKey: false, serviceAccountCanRead: false, duplicateSubject: false, services: [] };
  if (registered === null || thumbprint === null) return empty;
  // Without the registered certificate's subject the store cannot be asked (its DER did not parse: that is a finding already).
  if (summary === null) return { ...empty, error: 'not checked: the registered certificate could not be read' };
  let m;
  try {
    // Its own subject (the Name's DER): duplicateSubject tells about another certificate with it (Set-CrmCertificate finds by subject).
    m = await machineCert(ctx, certs, server, registered);
  } catch (error) {
    failures.push(error);
    find(`${server} cannot be read: ${reason(error)}`, 'Check PowerShell remoting from the agent to the server (Enable-PSRemoting, the firewall, the agent account being a local administrator there).');
    return { ...empty, error: reason(error) };
  }
  const keySpec = m.keySpec === 0 || m.keySpec === 1 || m.keySpec === 2 ? m.keySpec : null;
  const state: ServerCertState = {
    server,
    thumbprint,
    found: m.found,
    keySpec,
    hasPrivateKey: m.hasPrivateKey,
    serviceAccountCanRead: m.serviceAccountCanRead,
    duplicateSubject: m.duplicateSubject,
    services: m.services.slice(0, 4).map((s) => ({ name: clip(s.name, 80), status: clip(s.status, 40) })),
  };
  const subject = summary ? ` (${clip(summary.subject, 80)})` : '';
  if (!m.found) find(`The registered certificate is not in LocalMachine\\My on ${server}.`, 'Import it there with its private key (certutil -importpfx <file> AT_KEYEXCHANGE), or rotate again: the import step does it.');
  else {
    if (!m.hasPrivateKey) find(`The certificate on ${server} has no private key.`, 'Import the PFX (with the private key) again: certutil -importpfx <file> AT_KEYEXCHANGE.');
    if (keySpec !== 1) find(`The certificate on ${server} has KeySpec ${m.keySpec ?? 'unknown'}; CRM needs KeySpec 1 (AT_KEYEXCHANGE).`, 'Import it again with certutil -importpfx <file> AT_KEYEXCHANGE (a CNG key needs a PFX exported for a legacy CSP).');
    if (!m.serviceAccountCanRead) find(`${certs.serviceAccount} cannot read the private key on ${server}.`, 'Grant it Read on the private key (Manage Private Keys), then restart the async services; or Resume the rotation.');
  }
  if (m.duplicateSubject) {
    find(
      `Another certificate with the same subject${subject} is in LocalMachine\\My on ${server}: Set-CrmCertificate finds the certificate by subject name, so it may pick the wrong one ("private key not found").`,
      'Rotate to a certificate issued with a different subject (for example with the year in the CN); keep the registered one until the rotation is verified (a rollback needs it).',
    );
  }
  for (const s of m.services) if (s.status !== 'Running') find(`${s.name} is ${s.status} on ${server}.`, 'Start it (Start-Service); server-side sync needs the async services running.');
  return state;
}

function graphFix(error: unknown): string {
  const code = isSetupError(error) ? error.code : undefined;
  if (code === 'GRAPH_AUTH_FAILED') return 'Check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and the client secret or certificate of the helper app registration.';
  if (code === 'GRAPH_FORBIDDEN') return 'Grant the helper app the Graph application permissions Application.ReadWrite.All and Organization.Read.All, with admin consent.';
  return 'Check that the agent reaches the login and Graph hosts (proxy, TLS_CA_FILE for a TLS-inspecting proxy).';
}
