import { SetupError } from '../../../core/setup-error.ts';
import type { PowershellOutput } from '../../adapters/powershell/scripts.ts';
import { subjectDerBase64 } from '../../certkit/kit.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import type { StepEnv } from '../step.ts';
import { joinDetail, listServers, type CertRef, type CertStep, type CertStepOptions, type StepCert } from './common.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { onServer } from './on-server.ts';
import { withPfxCopy } from './validate.ts';

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

/**
 * Each server's store for `cert`, read once per check: `tolerant` keeps a server's error in the map
 * (the rotation plan shows it), otherwise the first one throws, naming the server.
 */
export async function readStores(ctx: JobContext, certs: ReadyCerts, cert: CertRef, tolerant: boolean): Promise<Map<string, MachineCert | Error>> {
  const out = new Map<string, MachineCert | Error>();
  for (const server of certs.servers) {
    if (tolerant) out.set(server, await machineCert(ctx, certs, server, cert).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))));
    else out.set(server, await onServer(server, () => machineCert(ctx, certs, server, cert)));
  }
  return out;
}

/** The stores a check reads: the plan's shared read when there is one, else its own (a failing server throws). */
export function storesOf(o: CertStepOptions, env: StepEnv): Promise<Map<string, MachineCert | Error>> {
  return o.reads?.stores?.() ?? readStores(env.ctx, o.certs, o.cert(), false);
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
 * The import: every server checked first (a same-subject certificate anywhere refuses the step
 * before any server is changed), then `certutil -importpfx … AT_KEYEXCHANGE` where needed.
 */
export async function importCertificate(ctx: JobContext, certs: ReadyCerts, next: CertRef, pfx: { path: string; password: string | undefined }): Promise<StepOutcome> {
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

/** The registered certificate is on a server that lacks it only when its PFX is CERT_NEW_PFX. */
function cannotImport(certs: ReadyCerts, cert: StepCert, servers: readonly string[]): SetupError {
  return new SetupError(
    'STEP_FAILED',
    `The registered certificate ${cert.thumbprint} is not on ${listServers(servers)}, and ${certs.settings.CERT_NEW_PFX} in CERT_DIR is not that certificate, so the runbook cannot import it.`,
    {
      hint: `Put the registered certificate's PFX (with its private key) in CERT_DIR as ${certs.settings.CERT_NEW_PFX} and Resume, or import it on ${listServers(servers)} by hand (certutil -importpfx <file> AT_KEYEXCHANGE) and Resume. To move to another certificate use @setup cert rotate.`,
    },
  );
}

/** import: into LocalMachine\My with KeySpec 1 on every async server, where it is missing. */
export function importStep(o: CertStepOptions): CertStep {
  const { certs } = o;
  return {
    id: 'import',
    async check(env) {
      const cert = o.cert();
      const unreadable: string[] = [];
      const duplicate: string[] = [];
      const missing: string[] = [];
      const present: string[] = [];
      for (const [server, m] of await storesOf(o, env)) {
        if (m instanceof Error) unreadable.push(`${server} (${m.message.slice(0, 80)})`);
        else if (importAction(m) === 'refuse') duplicate.push(server);
        else if (importAction(m) === 'import') missing.push(server);
        else present.push(server);
      }
      if (o.wording === 'rotation') {
        if (unreadable.length > 0 || duplicate.length > 0) {
          return {
            upToDate: false,
            state: 'failed',
            detail: joinDetail([
              duplicate.length > 0 &&
                `cannot rotate: another certificate has this subject. Set-CrmCertificate finds it by subject name: two with one subject break it ("private key not found"). Get the new one issued with another subject (e.g. the year in the CN); do not delete the old one (a rollback needs it). On ${listServers(duplicate)}`,
              unreadable.length > 0 && `cannot read ${unreadable.join(', ')}`,
            ]),
          };
        }
        if (missing.length === 0) return { upToDate: true, detail: `already on ${listServers(present)}` };
        return { upToDate: false, detail: joinDetail([`would import on ${listServers(missing)}`, present.length > 0 && `already on ${listServers(present)}`]) };
      }
      if (duplicate.length > 0) {
        return { upToDate: false, detail: `cannot import: another certificate has this subject on ${listServers(duplicate)}`, blocker: { message: `Another certificate with the subject of ${cert.thumbprint} is on ${listServers(duplicate)}.`, fix: DUPLICATE_SUBJECT_FIX } };
      }
      if (missing.length === 0) return { upToDate: true, detail: `already done: ${cert.thumbprint} is on ${listServers(certs.servers)} with KeySpec 1` };
      if (!cert.pfx) {
        const e = cannotImport(certs, cert, missing);
        return { upToDate: false, detail: `cannot import on ${listServers(missing)}: no PFX of the registered certificate`, blocker: { message: e.message, fix: e.hint ?? '' } };
      }
      return { upToDate: false, detail: joinDetail([`would import ${cert.thumbprint} on ${listServers(missing)}`, missing.length < certs.servers.length && 'already on the others']) };
    },
    async apply(env) {
      const cert = o.cert();
      if (cert.pfx) {
        const out = await withPfxCopy(cert.pfx, (path) => importCertificate(env.ctx, certs, cert, { path, password: certs.settings.CERT_PFX_PASSWORD }));
        return { ...out, wrote: out.changed === true };
      }
      // The registered certificate without its PFX (the runbook): fine only where it is already imported.
      const stores = await readStores(env.ctx, certs, cert, false);
      const servers = (action: ImportAction) => [...stores].filter(([, m]) => !(m instanceof Error) && importAction(m) === action).map(([s]) => s);
      const duplicate = servers('refuse');
      if (duplicate.length > 0) throw new SetupError('STEP_FAILED', `another certificate with the same subject is in LocalMachine\\My on ${listServers(duplicate)}.`, { hint: DUPLICATE_SUBJECT_FIX });
      const missing = servers('import');
      if (missing.length > 0) throw cannotImport(certs, cert, missing);
      return { detail: `already on ${listServers(certs.servers)}`, changed: false, wrote: false };
    },
  };
}
