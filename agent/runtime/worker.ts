import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { createAuditLog, type AuditLog } from '../../core/audit-log.ts';
import type { Logger } from '../../core/logger.ts';
import { SetupError, isSetupError, toSetupError } from '../../core/setup-error.ts';
import { z } from 'zod';
import { MAX_STEPS, stepStateSchema } from '../../jobs/cert-types.ts';
import type { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { attemptOf, jobIdFor, jobTtlMs, verifyJob } from '../../jobs/job-options.ts';
import type { JobPayload, JobResult, JobType, Progress, ReportEvent } from '../../jobs/job-types.ts';
import type { AgentConfig } from './config.ts';
import type { CrmApi } from '../adapters/crm/client.ts';
import { runJob } from '../jobs/handlers.ts';
import type { CertServices, JobContext } from './job-context.ts';
import { createJobResultStore } from './result-store.ts';
import { throttleProgress } from './progress-throttle.ts';
import type { ReportPublisher } from './report-publisher.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

export interface JobProcessorDeps {
  config: AgentConfig;
  redis: Redis;
  signer: EnvelopeSigner;
  crm: CrmApi;
  publisher: ReportPublisher;
  logger: Logger;
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Aborted when the agent closes: long waits (Test & Enable polling) stop and the job is retried later. */
  signal: AbortSignal;
  /** The certificate side (issue 3), passed to the handlers in their context. */
  certs?: CertServices;
  /** Runs a verified payload; defaults to the real handlers (tests replace it). */
  run?: (payload: JobPayload, ctx: JobContext) => Promise<JobResult>;
  /** Waits between attempts to publish the result report (then BullMQ's retry takes over). */
  publishRetryDelaysMs?: readonly number[];
  /** The deployment's audit log (default: core/audit-log.ts on `redis` under REDIS_PREFIX). */
  audit?: AuditLog;
}

/** Redis key a `cancel <run>` sets (the bot's RunStore.cancelKey): the agent stops the run before its next step. */
export function cancelKey(prefix: string, runId: string): string {
  return redisKeys.cancel(prefix, runId);
}

/** Redis key of the replay guard for a run's job of one type (and attempt, for a resumed run). */
export function jobSeenKey(prefix: string, runId: string, type: JobType, attempt = 1): string {
  return redisKeys.jobSeen(prefix, jobIdFor(runId, type, attempt));
}

/**
 * What the replay guard stores: this exact BullMQ job instance. The job id alone is not enough:
 * a finished job can be removed (or dropped after 5,000 completions) and the same signed envelope
 * added again under the same id; BullMQ gives the new job a new timestamp.
 */
export function jobClaim(job: Pick<Job, 'id' | 'timestamp'>): string {
  return `${job.id ?? ''}:${job.timestamp}`;
}

/** Appended to the claim when the job reached its final outcome: a finished claim is refused. */
const DONE = ':done';

/** Marks the claim finished, only if this job instance still holds it (compare-and-set). */
const finishClaimScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2], 'KEEPTTL')
  return 1
end
return 0`;

const defaultPublishRetryDelaysMs = [250, 1_000, 4_000] as const;

/** Kept a day longer than any job can stay valid, so a replay is caught as long as its signature is. */
const seenTtlMs = (type: JobPayload['type']) => jobTtlMs[type] + 24 * 60 * 60_000;

const stepStatesSchema = z.array(stepStateSchema).max(MAX_STEPS).optional();

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * The BullMQ processor. Nothing runs before the job's signature, expiry and body are verified; a
 * job that fails verification is never acted on (not even reported about), because its body cannot
 * be trusted. Outcomes: the result (returned and reported), a retry (normal error, for retryable
 * failures while attempts remain), or an UnrecoverableError with a `failed` report.
 */
export function createJobProcessor(deps: JobProcessorDeps): (job: Job) => Promise<JobResult> {
  const { config, redis, signer, publisher, now } = deps;
  const run = deps.run ?? runJob;
  const results = createJobResultStore({ redis, prefix: config.REDIS_PREFIX, signingKey: config.JOB_SIGNING_KEY });
  const publishRetryDelaysMs = deps.publishRetryDelaysMs ?? defaultPublishRetryDelaysMs;
  const audit = deps.audit ?? createAuditLog({ redis, prefix: config.REDIS_PREFIX, now });

  return async (job: Job): Promise<JobResult> => {
    const jobLog = deps.logger.child({ jobId: job.id, jobName: job.name });
    let payload: JobPayload;
    try {
      payload = verifyJob(signer, job.data);
    } catch (error) {
      const e = toSetupError(error, 'JOB_INVALID');
      jobLog.error({ code: e.code, reason: e.message }, 'job rejected before running: it did not verify; nothing was done');
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }
    const log = jobLog.child({ runId: payload.runId, jobType: payload.type });
    const target = { runId: payload.runId, jobType: payload.type, attempt: attemptOf(payload) };

    if (job.name !== payload.type) {
      log.error('job rejected: its name does not match the signed body type; nothing was done');
      throw new UnrecoverableError(`JOB_INVALID: job name "${job.name}" does not match the signed type "${payload.type}"`);
    }
    if (payload.deployment !== config.DEPLOYMENT) {
      const e = new SetupError('JOB_WRONG_DEPLOYMENT', `This job is for the CRM deployment "${payload.deployment}", but this agent serves "${config.DEPLOYMENT}".`, {
        hint: "Check the bot's deployment settings and the agents' DEPLOYMENT: each deployment's jobs must reach its own agents.",
      });
      log.error({ code: e.code }, e.message);
      await publishFailed(e);
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }

    // Replay guard: a signed job runs as one BullMQ job instance. Its retries (same id and timestamp,
    // claim not finished) pass; another job id, the same id added again, or a finished claim are refused.
    const claim = jobClaim(job);
    const seenKey = jobSeenKey(config.REDIS_PREFIX, payload.runId, payload.type, attemptOf(payload));
    const claimed = await redis.set(seenKey, claim, 'PX', seenTtlMs(payload.type), 'NX');
    if (claimed !== 'OK') {
      const owner = await redis.get(seenKey);
      if (owner !== claim) {
        const finished = owner === `${claim}${DONE}`;
        log.error(
          { firstJob: owner },
          finished
            ? 'job rejected: this job already finished and was added again (replay); nothing was done'
            : 'job rejected: this signed job was already taken by another BullMQ job (replay); nothing was done',
        );
        throw new UnrecoverableError(`JOB_INVALID: replayed job (run ${payload.runId} ${payload.type} already ${finished ? 'finished' : 'taken'} as job ${owner ?? '?'})`);
      }
    }
    const finishClaim = async () => {
      try {
        await redis.eval(finishClaimScript, 1, seenKey, claim, DONE);
      } catch (error) {
        log.warn({ err: toSetupError(error).message }, 'could not mark the job finished in its replay guard');
      }
    };

    const inFlight = new Set<Promise<unknown>>();
    const sendProgress = (progress: Progress) => {
      const p = publisher.publish(target, { kind: 'progress', progress }).catch((error: unknown) => {
        log.warn({ err: toSetupError(error).message }, 'progress report not published');
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    };
    const flush = async () => {
      await Promise.all([...inFlight]);
    };

    const crm = deps.crm.scope();
    const ctx: JobContext = {
      crm,
      settings: config,
      logger: log,
      report: throttleProgress(sendProgress, config.PROGRESS_INTERVAL_MS, now),
      now,
      sleep: deps.sleep,
      signal: deps.signal,
      ...(deps.certs ? { certs: deps.certs } : {}),
      runbook: config,
      deployment: config.DEPLOYMENT,
      audit: (entry) => audit.append(entry),
      isCancelled: async () => (await redis.exists(cancelKey(config.REDIS_PREFIX, payload.runId))) === 1,
    };

    try {
      // An earlier attempt of this job instance may have done the work and failed only to report it.
      let result = await results.load(payload.runId, payload.type, claim);
      if (result) {
        log.info({ attempt: job.attemptsMade + 1 }, 'job already done in an earlier attempt; publishing its result again');
      } else {
        if (job.attemptsMade === 0) await publisher.publish(target, { kind: 'started' });
        log.info({ attempt: job.attemptsMade + 1 }, 'job started');
        result = await run(payload, ctx);
        await flush();
        // Kept until the result report is out, so a retry publishes it instead of redoing the work.
        await results.save(payload.runId, payload.type, claim, result, seenTtlMs(payload.type));
      }
      await publishWithRetry({ kind: 'result', result });
      await finishClaim();
      log.info({ crmRequests: crm.requestCount }, 'job finished');
      return result;
    } catch (error) {
      await flush();
      const e = toSetupError(error);
      // Unexpected errors (not SetupError) may be transient (Redis, network): let BullMQ try again.
      const retryable = isSetupError(error) ? error.retryable : true;
      const attempts = job.opts.attempts ?? 1;
      const last = job.attemptsMade + 1 >= attempts;
      if (retryable && !last) {
        log.warn({ code: e.code, reason: e.message, attempt: job.attemptsMade + 1, attempts }, 'job failed, BullMQ will retry it');
        throw new Error(`${e.code}: ${e.message}`, { cause: error });
      }
      log.error({ code: e.code, reason: e.message, attempt: job.attemptsMade + 1, crmRequests: crm.requestCount }, 'job failed');
      await publishFailed(e);
      await finishClaim();
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }

    /** Publishes a final report, trying again in place with backoff before giving up. */
    async function publishWithRetry(event: ReportEvent): Promise<void> {
      for (let attempt = 0; ; attempt += 1) {
        try {
          await publisher.publish(target, event);
          return;
        } catch (error) {
          const delayMs = publishRetryDelaysMs[attempt];
          if (delayMs === undefined) throw error;
          log.warn({ err: toSetupError(error).message, kind: event.kind, attempt: attempt + 1, delayMs }, 'report not published, trying again');
          await deps.sleep(delayMs, deps.signal);
        }
      }
    }

    async function publishFailed(e: SetupError): Promise<void> {
      // A multi-step job (rotation) throws with the step states in its details: the card shows where it stopped.
      const steps = stepStatesSchema.safeParse(e.details?.['steps']);
      const event: ReportEvent = {
        kind: 'failed',
        error: { code: e.code, message: clip(e.message, 1000), ...(e.hint ? { hint: clip(e.hint, 1000) } : {}) },
        ...(steps.success && steps.data ? { steps: steps.data } : {}),
      };
      try {
        await publishWithRetry(event);
      } catch (publishError) {
        log.error({ err: toSetupError(publishError).message }, 'failed report not published');
      }
    }
  };
}

/** The failure BullMQ gives a job that stalled more than maxStalledCount times (its processor is not called). */
export const STALLED_REASON = 'job stalled more than allowable limit';

/** Whether BullMQ failed the job because it stalled too often (the deferred failure it sets, or the error it fails it with). */
export function failedBecauseStalled(job: Pick<Job, 'deferredFailure'>, error: Pick<Error, 'message'>): boolean {
  return job.deferredFailure === STALLED_REASON || error.message.includes(STALLED_REASON);
}

/** The jobs whose steps the bot offers to retry (Retry step); the others are asked for again. */
const stepJobs: ReadonlySet<JobType> = new Set(['setup-run', 'cert-rotate', 'cert-rollback']);

/**
 * A job that stalled more than maxStalledCount times is failed by BullMQ without calling the
 * processor, so no `failed` report would reach the bot and its run would stay `running` (holding
 * the certificate slot). This publishes that report (JOB_STALLED) for the worker's `failed` event.
 * Only a job that verifies is reported about, like the processor's rule.
 */
export function createStalledReporter(deps: Pick<JobProcessorDeps, 'config' | 'redis' | 'signer' | 'publisher' | 'logger'>): (job: Job, error: Error) => Promise<void> {
  const { config, redis, signer, publisher } = deps;
  return async (job, error) => {
    if (!failedBecauseStalled(job, error)) return;
    const log = deps.logger.child({ jobId: job.id, jobName: job.name });
    let payload: JobPayload;
    try {
      payload = verifyJob(signer, job.data);
    } catch (verifyError) {
      log.error({ reason: toSetupError(verifyError, 'JOB_INVALID').message }, 'a stalled job that does not verify: not reported');
      return;
    }
    if (payload.deployment !== config.DEPLOYMENT || job.name !== payload.type) return;
    const hint = stepJobs.has(payload.type)
      ? "The agent stopped during a step (killed, restarted or cut off from Redis) more often than BullMQ allows. Check the agent's log and that it stays up, then Retry step: the steps done stay done, the interrupted step checks before it changes anything."
      : "The agent stopped while running this command (killed, restarted or cut off from Redis) more often than BullMQ allows. Check the agent's log and that it stays up, then run the command again.";
    const e = new SetupError('JOB_STALLED', `The agent stopped while running this ${payload.type} job ${job.stalledCounter > 0 ? `${job.stalledCounter} times ` : ''}and BullMQ gave up on it.`, { hint, retryable: false });
    log.error({ runId: payload.runId, jobType: payload.type, code: e.code }, 'job failed: it stalled too often');
    try {
      await publisher.publish({ runId: payload.runId, jobType: payload.type, attempt: attemptOf(payload) }, { kind: 'failed', error: { code: e.code, message: clip(e.message, 1000), hint: clip(hint, 1000) } });
    } catch (publishError) {
      log.error({ err: toSetupError(publishError).message }, 'failed report of a stalled job not published');
    }
    try {
      await redis.eval(finishClaimScript, 1, jobSeenKey(config.REDIS_PREFIX, payload.runId, payload.type, attemptOf(payload)), jobClaim(job), DONE);
    } catch (claimError) {
      log.warn({ err: toSetupError(claimError).message }, 'could not mark the stalled job finished in its replay guard');
    }
  };
}
