import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SetupError } from '../../../core/setup-error.ts';
import { rotationStepIds, type CertProblem, type CertRotateResult, type CertSummary, type Verification } from '../../../jobs/cert-types.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { runGuardedChange } from '../../runtime/guarded-change.ts';
import { entraStep, grantKeyAccessStep, importStep, readRegistered, registerStep, restartStep, settingsStep, type CertRef } from '../../steps/cert/checks.ts';
import { readCertFile } from '../../certkit/cert-dir.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import { StepRunner, type StepOutcome } from '../../steps/runner.ts';
import type { JournalEntry } from '../../steps/journal.ts';
import { MAX_REMEMBERED_MAILBOXES, describeVerification, selectMailboxesById, selectVerificationSet, verificationPassed, verifyMailboxes } from './verification.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { mergeKeyCredentials } from '../../adapters/graph/key-credentials.ts';

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

export function blockingProblems(summary: CertSummary): CertProblem[] {
  return summary.problems.filter((p) => p.severity === 'error');
}

export function describeCert(summary: CertSummary): string {
  return `${summary.subject}, thumbprint ${summary.thumbprint}, valid until ${summary.notAfter.slice(0, 10)}`;
}

export const refOf = (cert: { summary: CertSummary; derBase64: string }): CertRef => ({
  thumbprint: cert.summary.thumbprint,
  subject: cert.summary.subject,
  derBase64: cert.derBase64,
});

/** The journal data key of the replaced certificate's DER (kept for a rollback). */
export const OLD_DER_KEY = 'oldDerBase64';

/** The journal data key of the mailboxes a verification tested (comma-separated ids). */
export const MAILBOX_IDS_KEY = 'mailboxIds';

/** The mailbox ids a verify step recorded in the journal (empty when it recorded none). */
export function verifiedMailboxIds(entry: JournalEntry | undefined): string[] {
  return (entry?.data?.[MAILBOX_IDS_KEY] ?? '').split(',').filter((id) => id.length > 0);
}

/**
 * Runs the verify step (the mailbox Test & Enable machinery) and returns its verification (null:
 * nothing to verify). The mailboxes: `sameAs` (a rollback: the ones the rotation tested), else the
 * ones this run's earlier attempt tested (a resume tests again the mailboxes the failed
 * verification broke: a new selection would skip them, their last test having failed), else a
 * new selection by CERT_VERIFY_MAILBOXES. A remembered set none of which still qualifies is
 * replaced by a new selection.
 */
export async function verifyStep(
  ctx: JobContext,
  certs: ReadyCerts,
  runner: StepRunner,
  sameAs?: readonly string[],
): Promise<{ verification: Verification | null; passed: boolean }> {
  let verification: Verification | null = null;
  const remembered = sameAs && sameAs.length > 0 ? sameAs : verifiedMailboxIds(runner.recorded('verify'));
  const outcome = await runner.run('verify', async (step) => {
    const again = remembered.length > 0 ? await selectMailboxesById(ctx, remembered) : undefined;
    const set = again && again.rows.length > 0 ? again : await selectVerificationSet(ctx, certs.settings.CERT_VERIFY_MAILBOXES);
    if (set.rows.length === 0) {
      const which = set.mode === 'all' ? 'active approved mailbox' : 'active approved mailbox whose last Test & Enable succeeded';
      return { state: 'skipped', detail: `nothing verified: there is no ${which}` };
    }
    step.update(`testing ${set.rows.length} mailboxes`);
    verification = await verifyMailboxes(ctx, set.rows, (text) => step.update(text));
    const ids = set.rows.length <= MAX_REMEMBERED_MAILBOXES ? { data: { [MAILBOX_IDS_KEY]: set.rows.map((r) => r.mailboxid).join(',') } } : {};
    return { state: verificationPassed(verification) ? 'done' : 'failed', detail: describeVerification(verification), ...ids };
  });
  return { verification, passed: outcome.state !== 'failed' };
}

/**
 * `cert-rotate`: the approved rotation (docs/cert-rotation.md, "Steps"), or its resume. Every step
 * checks, then changes, and is recorded in the step journal; a resumed attempt skips the steps done.
 * A failed step throws (the job halts with the step states); a failed verification returns
 * outcome 'verification-failed' (the old certificate stays everywhere, for a rollback).
 */
export async function rotateCertificate(payload: PayloadOf<'cert-rotate'>, ctx: JobContext): Promise<CertRotateResult> {
  const certs = requireCerts(ctx, ['servers', 'pfx', 'graph']);
  return runGuardedChange(ctx, certs, payload, (guarded) => rotate(payload, guarded, certs));
}

async function rotate(payload: PayloadOf<'cert-rotate'>, ctx: JobContext, certs: ReadyCerts): Promise<CertRotateResult> {
  const started = ctx.now();
  const runner = await StepRunner.start(ctx, certs.journal, payload.runId, payload.attempt, rotationStepIds);
  let next: NewCert | undefined;

  await runner.run('validate', async () => {
    const read = await readNewCert(ctx, certs, payload.file);
    const errors = blockingProblems(read.summary);
    if (errors.length > 0) {
      throw new SetupError('CERT_REQUIREMENTS', `${read.fileName} cannot be used: ${errors.map((e) => e.message).join('; ')}`, {
        hint: errors.map((e) => e.fix).join(' '),
      });
    }
    if (read.summary.thumbprint !== payload.newThumbprint) {
      throw new SetupError('PLAN_CHANGED', `${read.fileName} now holds the certificate ${read.summary.thumbprint}, not the approved ${payload.newThumbprint}.`, {
        hint: 'What was approved is what runs: ask for a new plan (@setup cert rotate) and have it approved.',
      });
    }
    // The registered certificate must still be the one the plan showed (or this run's new one).
    const registered = await readRegistered(ctx, certs);
    const registeredThumbprint = registered?.thumbprint ?? null;
    if (registeredThumbprint !== payload.oldThumbprint && registeredThumbprint !== payload.newThumbprint) {
      throw new SetupError('PLAN_CHANGED', `CRM now has ${registeredThumbprint ?? 'no certificate'} registered, not the ${payload.oldThumbprint ?? 'none'} the plan showed.`, {
        hint: 'Someone changed the S2S certificate since the plan: ask for a new plan (@setup cert rotate).',
      });
    }
    next = read;
    // The replaced certificate's DER, for a rollback (kept from the first attempt once the new one is registered).
    const oldDer = runner.recorded('validate')?.data?.[OLD_DER_KEY] ?? (registered && registeredThumbprint === payload.oldThumbprint ? registered.derBase64 : undefined);
    return { detail: describeCert(read.summary), ...(oldDer ? { data: { [OLD_DER_KEY]: oldDer } } : {}) };
  });
  if (!next) throw new SetupError('INTERNAL', 'The new certificate was not read.');
  const cert: NewCert = next;
  const ref = refOf(cert);

  await runner.run('import', () => withPfxCopy(cert, (path) => importStep(ctx, certs, ref, { path, password: certs.settings.CERT_PFX_PASSWORD })));
  await runner.run('grant-key-access', () => grantKeyAccessStep(ctx, certs, ref));
  await runner.run('register-crm', () => registerStep(ctx, certs, ref));
  await runner.run('entra-key-credential', () => entraStep(ctx, certs, cert));
  await runner.run('s2s-settings', () => settingsStep(ctx, certs));
  await runner.run('restart-services', () => restartStep(ctx, certs));
  const { verification, passed } = await verifyStep(ctx, certs, runner);

  if (!passed) runner.skip('retire-old', 'the verification failed, so the old key credential stays for a rollback');
  else if (verification === null) runner.skip('retire-old', 'kept: nothing was verified');
  else if (certs.settings.CERT_RETIRE_OLD === 'keep-until-expiry') runner.skip('retire-old', 'kept until it expires (CERT_RETIRE_OLD=keep-until-expiry)');
  else if (payload.oldThumbprint === null || payload.oldThumbprint === payload.newThumbprint) runner.skip('retire-old', 'there was no old certificate');
  else {
    const old = payload.oldThumbprint;
    await runner.run('retire-old', () => retireOld(ctx, certs, old));
  }

  const result: CertRotateResult = {
    type: 'cert-rotate',
    outcome: passed ? 'rotated' : 'verification-failed',
    newThumbprint: payload.newThumbprint,
    oldThumbprint: payload.oldThumbprint,
    steps: runner.snapshot(),
    verification,
    durationMs: Math.max(0, Math.round(ctx.now() - started)),
  };
  ctx.logger.info({ outcome: result.outcome, newThumbprint: result.newThumbprint, attempt: payload.attempt }, 'certificate rotation finished');
  return result;
}

/**
 * Runs `fn` with the path of a copy of the validated PFX bytes in a fresh mkdtemp folder under the
 * OS temporary folder, removed afterwards, also on failure: a file swapped in CERT_DIR after the
 * validation cannot be what PowerShell imports. On Windows (the agent's platform) the modes do
 * nothing: the copy is protected only by the ACL of the agent account's %TEMP% (for the agent's
 * domain service account, its profile's AppData\Local\Temp: that account, SYSTEM and the
 * administrators). The 0600 file and mkdtemp's 0700 folder protect it on POSIX only (tests, sim).
 */
export async function withPfxCopy<T>(cert: Pick<NewCert, 'bytes' | 'summary'>, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'setup-pfx-'));
  try {
    const path = join(dir, `${cert.summary.thumbprint}.pfx`);
    await writeFile(path, cert.bytes, { mode: 0o600, flag: 'wx' });
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** retire-old: remove the old certificate's key credential (read-merge-write). */
async function retireOld(ctx: JobContext, certs: ReadyCerts, oldThumbprint: string): Promise<StepOutcome> {
  const graph = certs.graph();
  const sp = await graph.getCrmServicePrincipal();
  const plan = mergeKeyCredentials(sp.keyCredentials, ctx.now(), { remove: [oldThumbprint] });
  if (plan.removed === 0) return { detail: `the key credential of ${oldThumbprint} is already gone` };
  if (plan.write) await graph.setKeyCredentials(sp.id, plan.write);
  // Not a change the async services pick up: no restart is owed for it.
  return { detail: `removed the key credential of ${oldThumbprint}${plan.dropped > 0 ? ` and ${plan.dropped} expired` : ''}` };
}
