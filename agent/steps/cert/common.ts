import type { CertSummary, StepId, Verification } from '../../../jobs/cert-types.ts';
import type { PowershellOutput } from '../../adapters/powershell/scripts.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JournalEntry } from '../journal.ts';
import type { Step, StepCheck, StepEnv } from '../step.ts';

/**
 * What the certificate steps (steps/cert/*.ts) share. Each of them is one `Step` (check, apply),
 * used as they are by the rotation and its plan, the rollback and the runbook (steps/table.ts).
 * A check decides once what the step would do; `wording` only picks the texts the plan card has
 * always shown for it: the rotation plan's ("would import on CRMAPP01", "already set") or the
 * runbook's ("already done: …").
 */

/** A certificate the steps work with: its public facts and base64 DER. */
export interface CertRef {
  thumbprint: string;
  subject: string;
  derBase64: string;
}

/** The certificate a run puts in place: the validated PFX bytes when the agent has them (the import needs them). */
export interface StepCert extends CertRef {
  summary: CertSummary;
  pfx: { bytes: Buffer; summary: CertSummary } | null;
}

export const stepCertOf = (cert: { summary: CertSummary; derBase64: string; pfx: StepCert['pfx'] }): StepCert => ({
  thumbprint: cert.summary.thumbprint,
  subject: cert.summary.subject,
  derBase64: cert.derBase64,
  summary: cert.summary,
  pfx: cert.pfx,
});

export type Wording = 'rotation' | 'runbook';

/** What a certificate run (rotation, rollback) learns as its steps go, for the steps after. */
export interface CertRunFacts {
  /** The certificate being put in place (validate or validate-old reads it). */
  cert?: StepCert;
  /** The verify step's Test & Enable report (null: nothing verified). */
  verification?: Verification | null;
  /** Whether the verify step passed (a skipped verification passes). */
  passed?: boolean;
}

/** The env of a certificate run's steps: the job context, the journal of earlier attempts and the facts so far. */
export interface CertRunEnv extends StepEnv {
  recorded(id: StepId): JournalEntry | undefined;
  facts: CertRunFacts;
}

export interface CertStepOptions {
  certs: ReadyCerts;
  /** The certificate the step works on (in a rotation the one validate read: read only once it ran). */
  cert: () => StepCert;
  wording: Wording;
  /** Reads shared by the checks of one plan, so each server's store and the registration are read once. */
  reads?: CertReads;
}

export interface CertReads {
  /** Each server's store for the certificate; a server that cannot be read holds its error. */
  stores?: () => Promise<Map<string, PowershellOutput<'Get-MachineCertificate'> | Error>>;
  /** The certificate CRM has registered (null: none). */
  registered?: () => Promise<{ thumbprint: string; derBase64: string } | null>;
}

/** A certificate step: runs in any env that has the job context (a certificate run's, the runbook's). */
export type CertStep<E extends StepEnv = StepEnv> = Step<E>;

/** "A, B" or "A and 2 more". */
export function listServers(servers: readonly string[]): string {
  return servers.length <= 4 ? servers.join(', ') : `${servers.slice(0, 3).join(', ')} and ${servers.length - 3} more`;
}

/** Joins the non-empty parts of a step detail. */
export function joinDetail(parts: readonly (string | false | undefined)[]): string {
  return parts.filter((p): p is string => typeof p === 'string' && p.length > 0).join('; ');
}

export const reason = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The runbook's texts: "already done: …" when nothing is to do, else what the step would do. */
export const upToDate = (detail: string): StepCheck => ({ upToDate: true, detail: `already done: ${detail}` });
export const would = (detail: string): StepCheck => ({ upToDate: false, detail });

/** Memoizes a read for the checks of one plan. */
export function once<T>(read: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => (value ??= read());
}
