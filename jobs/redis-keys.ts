/**
 * Every Redis key the bot and the agent build themselves, in one place (BullMQ keeps its own keys
 * under the queue names of deployment.ts). The key strings are stored data: a run, a journal or a
 * lock written before a change of one of these would be orphaned, so they never change; the tests
 * of the modules that use them (run-store, worker, journal, change lock, audit log, watch) read
 * and write real Redis through them.
 *
 * `prefix` is REDIS_PREFIX. These are templates only: the callers validate the run ids, job ids and
 * deployment names they put in (runIdSchema, deploymentSchema), as before the keys moved here.
 */
export const redisKeys = {
  // ---- a run (bot/runs) ----
  /** The run's hash (bot/runs/run-store.ts). */
  run: (prefix: string, runId: string) => `${prefix}:run:${runId}`,
  /** The deployment's runs, newest first (a sorted set). */
  runIndex: (prefix: string, deployment: string) => `${prefix}:runs:${deployment}`,
  /** Set by `cancel <run>`; the agent reads it before every step. */
  cancel: (prefix: string, runId: string) => `${prefix}:cancel:${runId}`,
  /** The deployment's one certificate change (rotation, rollback, run setup) the bot lets through. */
  certActive: (prefix: string, deployment: string) => `${prefix}:cert-active:${deployment}`,
  /** One writer per run card (bot/runs/card-lock.ts). */
  cardLock: (prefix: string, runId: string) => `${prefix}:run-lock:${runId}`,

  // ---- a job on the agent (agent/runtime, agent/steps) ----
  /** The replay guard of a signed job (its job id names run, type and attempt). */
  jobSeen: (prefix: string, jobId: string) => `${prefix}:job-seen:${jobId}`,
  /** A job's result, kept for a retried job to answer without doing the work again. */
  jobResult: (prefix: string, runId: string, type: string) => `${prefix}:job-result:${runId}-${type}`,
  /** The run's report sequence (attempt n > 1 numbers above attempt n − 1). */
  reportSeq: (prefix: string, runId: string, attempt: number) => (attempt > 1 ? `${prefix}:report-seq:${runId}:a${attempt}` : `${prefix}:report-seq:${runId}`),
  /** The run's step journal, MACed entries per step (every multi-step run; the text predates the runbook). */
  stepJournal: (prefix: string, runId: string) => `${prefix}:cert-steps:${runId}`,
  /** The deployment's change lock on the agent: one certificate or runbook change at a time (the text predates the runbook). */
  changeLock: (prefix: string, deployment: string) => `${prefix}:cert-lock:${deployment}`,

  // ---- a deployment ----
  /** Where the deployment's agents leave a heartbeat. */
  agentHeartbeat: (prefix: string, deployment: string) => `${prefix}:agent-heartbeat:${deployment}`,
  /** The deployment's append-only audit log (a stream). */
  audit: (prefix: string, deployment: string) => `${prefix}:audit:${deployment}`,

  // ---- the certificate watch (bot/cert-watch) ----
  certWatchConversation: (prefix: string, deployment: string) => `${prefix}:cert-watch:${deployment}:conversation`,
  /** A rotation-due card posted for this certificate and threshold. */
  certWatchThreshold: (prefix: string, deployment: string, thumbprint: string, days: number) => `${prefix}:cert-watch:${deployment}:${thumbprint}:${days}`,
  /** An expired / not-registered card posted on this day. */
  certWatchDaily: (prefix: string, deployment: string, thumbprint: string | null, what: string, day: string) =>
    `${prefix}:cert-watch:${deployment}:${thumbprint ?? 'none'}:${what}:${day}`,
  certWatchFailures: (prefix: string, deployment: string) => `${prefix}:cert-watch:${deployment}:failures`,
  certWatchCannotCheck: (prefix: string, deployment: string, day: string) => `${prefix}:cert-watch:${deployment}:cannot-check:${day}`,

  // ---- one plan per card click ----
  /** Start rotation on a rotation-due card. */
  certWatchStart: (prefix: string, watchRunId: string) => `${prefix}:cert-watch-start:${watchRunId}`,
  /** Sync from this org only on a Test & Enable results card. */
  primaryOrgStart: (prefix: string, runId: string) => `${prefix}:primary-org-start:${runId}`,
} as const;
