import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SetupError } from '../../../core/setup-error.ts';
import type { CertProblem, CertSummary } from '../../../jobs/cert-types.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { readCertFile } from '../../certkit/cert-dir.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { stepCertOf, type CertRunEnv, type CertStep, type StepCert } from './common.ts';
import { readRegistered } from './register-crm.ts';

/** The new certificate as read from its PFX in CERT_DIR. */
export interface NewCert {
  fileName: string;
  path: string;
  /** The bytes that were validated: the import uses a private copy of these, never the file again. */
  bytes: Buffer;
  summary: CertSummary;
  derBase64: string;
}

/** Reads and summarizes the PFX (kit, CERT_MIN_DAYS_LEFT); the problems are in `summary.problems`. */
export async function readNewCert(ctx: JobContext, certs: ReadyCerts, fileName: string | undefined): Promise<NewCert> {
  const name = fileName ?? certs.settings.CERT_NEW_PFX;
  const file = await readCertFile(certs.certDir, name);
  const password = certs.settings.CERT_PFX_PASSWORD;
  const read = certs.kit.readCertificateFile(file.bytes, {
    fileName: name,
    ...(password === undefined ? {} : { password }),
    now: ctx.now(),
    minDaysLeft: certs.settings.CERT_MIN_DAYS_LEFT,
    // Whatever the file holds, the rotation needs the private key (a .cer renamed .pfx is refused).
    requirePrivateKey: true,
  });
  return { fileName: name, path: file.path, bytes: file.bytes, summary: read.summary, derBase64: read.derBase64 };
}

/** The new certificate as the steps take it (its own PFX bytes are what the import uses). */
export const newStepCert = (next: NewCert): StepCert => stepCertOf({ summary: next.summary, derBase64: next.derBase64, pfx: next });

export function blockingProblems(summary: CertSummary): CertProblem[] {
  return summary.problems.filter((p) => p.severity === 'error');
}

export function describeCert(summary: CertSummary): string {
  return `${summary.subject}, thumbprint ${summary.thumbprint}, valid until ${summary.notAfter.slice(0, 10)}`;
}

/** The journal data key of the replaced certificate's DER (kept for a rollback). */
export const OLD_DER_KEY = 'oldDerBase64';

/**
 * Runs `fn` with the path of a copy of the validated PFX bytes in a fresh mkdtemp folder under the
 * OS temporary folder, removed afterwards, also on failure: a file swapped in CERT_DIR after the
 * validation cannot be what PowerShell imports. On Windows (the agent's platform) the modes do
 * nothing: the copy is protected only by the ACL of the agent account's %TEMP% (for the agent's
 * domain service account, its profile's AppData\Local\Temp: that account, SYSTEM and the
 * administrators). The 0600 file and mkdtemp's 0700 folder protect it on POSIX only (tests, sim).
 */
export async function withPfxCopy<T>(cert: { bytes: Buffer; summary: CertSummary }, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'setup-pfx-'));
  try {
    const path = join(dir, `${cert.summary.thumbprint}.pfx`);
    await writeFile(path, cert.bytes, { mode: 0o600, flag: 'wx' });
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * validate (the rotation's first step): the PFX is re-read on every attempt and must still be the
 * approved certificate, and CRM must still have the plan's old certificate (or this run's new one)
 * registered. The check (the plan) judges the certificate the plan read; `run` is the approved
 * rotation (absent in a plan), whose certificate the step puts in `facts.cert`.
 */
export function validateStep(certs: ReadyCerts, planned: () => StepCert, run?: PayloadOf<'cert-rotate'>): CertStep<CertRunEnv> {
  return {
    id: 'validate',
    check() {
      const { summary } = planned();
      const errors = blockingProblems(summary);
      if (errors.length > 0) return Promise.resolve({ upToDate: false, state: 'failed', detail: `cannot rotate: ${errors.map((e) => e.message).join('; ')}` });
      return Promise.resolve({ upToDate: false, detail: `would use ${describeCert(summary)}` });
    },
    async apply(env) {
      if (!run) throw new SetupError('INTERNAL', 'validate runs only in an approved rotation.');
      const { ctx } = env;
      const read = await readNewCert(ctx, certs, run.file);
      const errors = blockingProblems(read.summary);
      if (errors.length > 0) {
        throw new SetupError('CERT_REQUIREMENTS', `${read.fileName} cannot be used: ${errors.map((e) => e.message).join('; ')}`, {
          hint: errors.map((e) => e.fix).join(' '),
        });
      }
      if (read.summary.thumbprint !== run.newThumbprint) {
        throw new SetupError('PLAN_CHANGED', `${read.fileName} now holds the certificate ${read.summary.thumbprint}, not the approved ${run.newThumbprint}.`, {
          hint: 'What was approved is what runs: ask for a new plan (@setup cert rotate) and have it approved.',
        });
      }
      // The registered certificate must still be the one the plan showed (or this run's new one).
      const registered = await readRegistered(ctx, certs);
      const registeredThumbprint = registered?.thumbprint ?? null;
      if (registeredThumbprint !== run.oldThumbprint && registeredThumbprint !== run.newThumbprint) {
        throw new SetupError('PLAN_CHANGED', `CRM now has ${registeredThumbprint ?? 'no certificate'} registered, not the ${run.oldThumbprint ?? 'none'} the plan showed.`, {
          hint: 'Someone changed the S2S certificate since the plan: ask for a new plan (@setup cert rotate).',
        });
      }
      env.facts.cert = newStepCert(read);
      // The replaced certificate's DER, for a rollback (kept from the first attempt once the new one is registered).
      const oldDer = env.recorded('validate')?.data?.[OLD_DER_KEY] ?? (registered && registeredThumbprint === run.oldThumbprint ? registered.derBase64 : undefined);
      return { detail: describeCert(read.summary), wrote: false, ...(oldDer ? { data: { [OLD_DER_KEY]: oldDer } } : {}) };
    },
  };
}
