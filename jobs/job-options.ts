import { randomBytes } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import type { EnvelopeSigner, Envelope } from './envelope-signer.ts';
import { jobPayloadSchema, reportSchema, type JobPayload, type JobType, type Report } from './job-types.ts';

/** How long a signed job stays valid: a plan nobody picks up soon is stale; approved work may wait for an agent restart. */
export const jobTtlMs: Readonly<Record<JobType, number>> = {
  plan: 15 * 60_000,
  status: 5 * 60_000,
  approve: 24 * 60 * 60_000,
  test: 24 * 60 * 60_000,
  'cert-status': 5 * 60_000,
  'cert-plan': 15 * 60_000,
  'cert-rotate': 24 * 60 * 60_000,
  'cert-rollback': 24 * 60 * 60_000,
  preflight: 5 * 60_000,
  'setup-plan': 15 * 60_000,
  'setup-run': 24 * 60 * 60_000,
};

/** Reports are consumed within seconds; a day covers a bot outage. */
export const reportTtlMs = 24 * 60 * 60_000;

/** A run id: 10 characters of [a-z0-9], short enough to type in `@setup resume <run>`. */
export function newRunId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(10);
  let id = '';
  for (const b of bytes) id += alphabet[b % alphabet.length];
  return id;
}

/**
 * Deterministic job id: adding the same job twice is a no-op in BullMQ (no double work). A resumed
 * run (attempt 2, 3, …) is a new job of the same run: `<runId>-<type>-a<attempt>`.
 */
export function jobIdFor(runId: string, type: JobType, attempt = 1): string {
  return attempt > 1 ? `${runId}-${type}-a${attempt}` : `${runId}-${type}`;
}

/** The attempt a payload carries (resumable jobs), 1 for every other job. */
export function attemptOf(payload: JobPayload): number {
  return 'attempt' in payload ? payload.attempt : 1;
}

/**
 * Report seqs of a resumable run: attempt n's reports are numbered from (n - 1) × 1,000,000 + 1, so
 * every report of a later attempt is newer than all of an earlier one's (the bot drops reports older
 * than what it posted) and their report job ids never collide, even when the agent's counter for the
 * run has expired while the run waited halted.
 */
export const REPORT_SEQ_ATTEMPT_STRIDE = 1_000_000;

/** The seq of the `n`-th report (n ≥ 1) of `attempt`. */
export function reportSeqFor(attempt: number, n: number): number {
  return (Math.max(1, attempt) - 1) * REPORT_SEQ_ATTEMPT_STRIDE + n;
}

/** The attempt a report seq belongs to (1 for every report of a run that was never resumed). */
export function attemptOfReportSeq(seq: number): number {
  return Math.floor(Math.max(0, seq - 1) / REPORT_SEQ_ATTEMPT_STRIDE) + 1;
}

export function reportJobIdFor(runId: string, seq: number): string {
  return `${runId}-r${seq}`;
}

export function jobAddOptions(runId: string, type: JobType, attempt = 1): JobsOptions {
  const readOnly = type === 'plan' || type === 'status' || type === 'cert-status' || type === 'cert-plan' || type === 'preflight' || type === 'setup-plan';
  // A rotation step that failed halts the run for a person to look at (resume or roll back); BullMQ
  // retries only what failed for a transient reason, a few times.
  return {
    jobId: jobIdFor(runId, type, attempt),
    attempts: readOnly ? 3 : 5,
    backoff: { type: 'exponential', delay: readOnly ? 2_000 : 10_000 },
    removeOnComplete: { age: 7 * 24 * 3600, count: 5_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  };
}

export function reportAddOptions(runId: string, seq: number): JobsOptions {
  return {
    jobId: reportJobIdFor(runId, seq),
    attempts: 8,
    backoff: { type: 'exponential', delay: 2_000 },
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

/** Signs a job payload after checking it against the contract. */
export function signJob(signer: EnvelopeSigner, payload: JobPayload): Envelope<JobPayload> {
  const body = jobPayloadSchema.parse(payload);
  return signer.sign('job', body, jobTtlMs[body.type]);
}

/** Verifies a job's envelope (signature, expiry, schema). Throws SetupError on any problem. */
export function verifyJob(signer: EnvelopeSigner, data: unknown): JobPayload {
  return signer.verify('job', data, jobPayloadSchema).body;
}

export function signReport(signer: EnvelopeSigner, report: Report): Envelope<Report> {
  return signer.sign('report', reportSchema.parse(report), reportTtlMs);
}

export function verifyReport(signer: EnvelopeSigner, data: unknown): Report {
  return signer.verify('report', data, reportSchema).body;
}
