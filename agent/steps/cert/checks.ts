import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SetupError } from '../../../core/setup-error.ts';
import type { CertSummary } from '../../../jobs/cert-types.ts';
import { subjectDerBase64 } from '../../certkit/kit.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import { onServer } from './on-server.ts';
import type { StepOutcome } from '../runner.ts';
import { CRM_APP_ID, S2S_AUTHORITY_PRINCIPAL_ID, type CrmServicePrincipal, type GraphApi } from '../../adapters/graph/api.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { mergeKeyCredentials, newKeyCredential, thumbprintOfDer, thumbprintOfKeyCredential, type KeyCredentialPlan } from '../../adapters/graph/key-credentials.ts';
import type { PowershellOutput, PowershellParams, PowershellScriptName } from '../../adapters/powershell/scripts.ts';

/**
 * The checks and changes of the certificate steps, shared by the rotation (cert-rotate.ts), its
 * plan (cert-plan.ts: the checks only, as a preview) and the rollback (cert-rollback.ts). Every
 * change is preceded by the check that decides whether it is needed.
 */

/** A certificate the steps work with: its public facts and base64 DER. */
export interface CertRef {
  thumbprint: string;
  subject: string;
  derBase64: string;
}

export function runScript<N extends PowershellScriptName>(
  ctx: JobContext,
  certs: ReadyCerts,
  name: N,
  params: PowershellParams<N>,
  options: { pfxPassword?: string } = {},
): Promise<PowershellOutput<N>> {
  return certs.powershell.run(name, params, { signal: ctx.signal, ...options });
}

/** "A, B" or "A and 2 more". */
export function listServers(servers: readonly string[]): string {
  return servers.length <= 4 ? servers.join(', ') : `${servers.slice(0, 3).join(', ')} and ${servers.length - 3} more`;
}

/** Joins the non-empty parts of a step detail. */
export function joinDetail(parts: readonly (string | false | undefined)[]): string {
  return parts.filter((p): p is string => typeof p === 'string' && p.length > 0).join('; ');
}

// ---- machine certificate (import, key access, validate-old) ------------------------------------

export type MachineCert = PowershellOutput<'Get-MachineCertificate'>;

/**
 * Get-MachineCertificate for `cert` on one server: -SubjectDer is the certificate's own subject Name
 * (DER, base64), so duplicateSubject tells about another certificate with the same subject bytes
 * even before this one is imported.
 */
export function machineCert(ctx: JobContext, certs: ReadyCerts, server: string, cert: { thumbprint: string; derBase64: string }): Promise<MachineCert> {
  return runScript(ctx, certs, 'Get-MachineCertificate', {
    ComputerName: server,
    Thumbprint: cert.thumbprint,
    SubjectDer: subjectDerBase64(cert.derBase64),
    ServiceAccount: certs.serviceAccount,
  });
}

/** In the store with its private key and KeySpec 1: nothing to import. */
export function isImported(m: MachineCert): boolean {
  return m.found && m.hasPrivateKey && m.keySpec === 1;
}

export type ImportAction = 'none' | 'import' | 'refuse';

/** Import check of one server: refuse when another certificate in the store has the same subject. */
export function importAction(m: MachineCert): ImportAction {
  if (m.duplicateSubject) return 'refuse';
  return isImported(m) ? 'none' : 'import';
}

/**
 * What to do about a same-subject renewal (the usual CA renewal): Set-CrmCertificate finds the
 * certificate by subject name, so two certificates with one subject break it.
 */
export const DUPLICATE_SUBJECT_FIX =
  'Set-CrmCertificate finds the certificate by subject name, so two certificates with one subject break it ("private key not found"). Get the new certificate issued with a different subject (for example add the year to the CN) and rotate to that one; do not delete the old certificate (a rollback needs it).';

export function duplicateSubjectError(subject: string): SetupError {
  return new SetupError(
    'STEP_FAILED',
    `another certificate with the same subject (${subject.slice(0, 120)}) is in LocalMachine\\My; importing would fail with "private key not found".`,
    { hint: DUPLICATE_SUBJECT_FIX, details: { duplicateSubject: true } },
  );
}

/**
 * Import step: every server checked first (a same-subject certificate anywhere refuses the step
 * before any server is changed), then `certutil -importpfx … AT_KEYEXCHANGE` where needed.
 */
export async function importStep(ctx: JobContext, certs: ReadyCerts, next: CertRef, pfx: { path: string; password: string | undefined }): Promise<StepOutcome> {
  const imported: string[] = [];
  const already: string[] = [];
  const toImport: string[] = [];
  for (const server of certs.servers) {
    await onServer(server, async () => {
      const action = importAction(await machineCert(ctx, certs, server, next));
      if (action === 'refuse') throw duplicateSubjectError(next.subject);
      if (action === 'none') already.push(server);
      else toImport.push(server);
    });
  }
  for (const server of toImport) {
    await onServer(server, async () => {
      const out = await runScript(ctx, certs, 'Import-S2SCertificate', { ComputerName: server, PfxPath: pfx.path }, pfx.password === undefined ? {} : { pfxPassword: pfx.password });
      if (out.thumbprint !== next.thumbprint) {
        throw new SetupError('STEP_FAILED', `the import gave certificate ${out.thumbprint}, not ${next.thumbprint}.`, { hint: 'Check the PFX in CERT_DIR: it changed while the rotation ran. Ask for a new plan.' });
      }
      if (out.keySpec !== 1) throw new SetupError('STEP_FAILED', `the certificate was imported with KeySpec ${out.keySpec ?? 'unknown'}; CRM needs KeySpec 1 (AT_KEYEXCHANGE).`);
      imported.push(server);
    });
  }
  return {
    detail: joinDetail([imported.length > 0 && `imported on ${listServers(imported)}`, already.length > 0 && `already on ${listServers(already)}`]),
    changed: imported.length > 0,
  };
}

/** Key access step: per server, grant Read on the private key unless the service account has it. */
export async function grantKeyAccessStep(ctx: JobContext, certs: ReadyCerts, next: CertRef): Promise<StepOutcome> {
  const granted: string[] = [];
  const already: string[] = [];
  for (const server of certs.servers) {
    await onServer(server, async () => {
      const m = await machineCert(ctx, certs, server, next);
      if (!m.found || !m.hasPrivateKey) throw new SetupError('STEP_FAILED', `the certificate ${next.thumbprint} is not in LocalMachine\\My with its private key.`, { hint: 'Resume the rotation: the import step runs again where it is missing.' });
      if (m.serviceAccountCanRead) {
        already.push(server);
        return;
      }
      const out = await runScript(ctx, certs, 'Grant-CertificateKeyAccess', { ComputerName: server, Thumbprint: next.thumbprint, ServiceAccount: certs.serviceAccount });
      if (!out.granted && !out.alreadyHad) throw new SetupError('STEP_FAILED', `Read on the private key could not be granted to ${certs.serviceAccount}.`, { hint: 'Grant it by hand (Manage Private Keys in certlm.msc), then Resume.' });
      if (out.alreadyHad) already.push(server);
      else granted.push(server);
    });
  }
  return {
    detail: joinDetail([granted.length > 0 && `granted ${certs.serviceAccount} Read on ${listServers(granted)}`, already.length > 0 && `already readable on ${listServers(already)}`]),
    changed: granted.length > 0,
  };
}

// ---- CRM registration ---------------------------------------------------------------------------

export interface Registered {
  thumbprint: string;
  derBase64: string;
}

/** Get-CrmCertificate S2STokenIssuer; null when none is registered. */
export async function readRegistered(ctx: JobContext, certs: ReadyCerts): Promise<Registered | null> {
  const out = await runScript(ctx, certs, 'Get-S2SCertificate', {});
  if (!out.registered || !out.derBase64) return null;
  return { thumbprint: thumbprintOfDer(out.derBase64), derBase64: out.derBase64 };
}

/** Register step: Set-CrmCertificate with the certificate written to a temporary .cer, unless it is registered. */
export async function registerStep(ctx: JobContext, certs: ReadyCerts, cert: CertRef): Promise<StepOutcome> {
  const current = await readRegistered(ctx, certs);
  if (current?.thumbprint === cert.thumbprint) return { detail: `${cert.thumbprint} is already registered`, changed: false };
  const dir = await mkdtemp(join(tmpdir(), 'setup-s2s-'));
  try {
    const cerPath = join(dir, `${cert.thumbprint}.cer`);
    await writeFile(cerPath, Buffer.from(cert.derBase64, 'base64'), { mode: 0o600 });
    const out = await runScript(ctx, certs, 'Register-S2SCertificate', { CerPath: cerPath });
    if (out.thumbprint !== cert.thumbprint) throw new SetupError('STEP_FAILED', `CRM registered ${out.thumbprint}, not ${cert.thumbprint}.`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { detail: `registered ${cert.thumbprint}${current ? ` (replacing ${current.thumbprint})` : ''}`, changed: true };
}

// ---- Entra key credential -------------------------------------------------------------------------

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

export function describeEntra(check: EntraCheck, would: boolean): string {
  const verb = (done: string, future: string) => (would ? future : done);
  return joinDetail([
    check.plan.added ? verb('added the key credential', 'would add the key credential') : 'the key credential is already there',
    check.plan.dropped > 0 && verb(`dropped ${check.plan.dropped} expired`, `would drop ${check.plan.dropped} expired`),
    check.spnMissing && verb('added the CRM appId to servicePrincipalNames', 'would add the CRM appId to servicePrincipalNames'),
  ]);
}

/** Entra step: read-merge-write of keyCredentials, read back, and the CRM appId in servicePrincipalNames. */
export async function entraStep(ctx: JobContext, certs: ReadyCerts, next: { summary: CertSummary; derBase64: string }): Promise<StepOutcome> {
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
  return { detail: describeEntra(check, false) };
}

// ---- S2S server settings ------------------------------------------------------------------------

export async function checkSettings(ctx: JobContext, certs: ReadyCerts): Promise<{ current: PowershellOutput<'Get-S2SServerSettings'>; ok: boolean }> {
  const current = await runScript(ctx, certs, 'Get-S2SServerSettings', {});
  return { current, ok: current.principalId === S2S_AUTHORITY_PRINCIPAL_ID && current.metadataUrl === certs.metadataUrl };
}

export async function settingsStep(ctx: JobContext, certs: ReadyCerts): Promise<StepOutcome> {
  const { ok } = await checkSettings(ctx, certs);
  if (ok) return { detail: 'already set', changed: false };
  await runScript(ctx, certs, 'Set-S2SServerSettings', { PrincipalId: S2S_AUTHORITY_PRINCIPAL_ID, MetadataUrl: certs.metadataUrl });
  return { detail: `set the authority principal and ${certs.metadataUrl}`, changed: true };
}

// ---- services ------------------------------------------------------------------------------------

export async function restartStep(ctx: JobContext, certs: ReadyCerts): Promise<StepOutcome> {
  for (const server of certs.servers) {
    await onServer(server, async () => {
      const out = await runScript(ctx, certs, 'Restart-CrmAsyncServices', { ComputerName: server });
      const notRunning = out.services.filter((s) => s.status !== 'Running');
      if (notRunning.length > 0 || out.services.length === 0) {
        throw new SetupError('STEP_FAILED', `after the restart ${notRunning.map((s) => `${s.name} is ${s.status}`).join(', ') || 'no async service was found'}.`, {
          hint: "Read the server's Application event log for why the service stopped, start it, then Resume.",
        });
      }
    });
  }
  return { detail: `restarted on ${listServers(certs.servers)}`, changed: false };
}

