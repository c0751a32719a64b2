import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../core/logger.ts';
import { SetupError, isSetupError, toSetupError } from '../core/setup-error.ts';
import type { EnvelopeSigner } from '../jobs/envelope-signer.ts';
import { jobTtlMs, verifyJob } from '../jobs/job-options.ts';
import type { JobPayload, JobResult, Progress, ReportEvent } from '../jobs/job-types.ts';
import type { AgentConfig } from './agent-config.ts';
import type { CrmApi } from './crm-client.ts';
import { runJob } from './job-handlers.ts';
import type { JobContext } from './job-context.ts';
import { throttleProgress } from './progress-throttle.ts';
import type { ReportPublisher } from './report-publisher.ts';

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
  /** Runs a verified payload; defaults to the real handlers (tests replace it). */
  run?: (payload: JobPayload, ctx: JobContext) => Promise<JobResult>;
}

/** Redis key of the replay guard for a run's job of one type. */
export function jobSeenKey(prefix: string, runId: string, type: string): string {
  return `${prefix}:job-seen:${runId}-${type}`;
}

/** Kept a day longer than any job can stay valid, so a replay is caught as long as its signature is. */
const seenTtlMs = (type: JobPayload['type']) => jobTtlMs[type] + 24 * 60 * 60_000;

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
    const target = { runId: payload.runId, jobType: payload.type };

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

    // Replay guard: the same signed job under another BullMQ job id is refused.
    const jobId = job.id ?? '';
    const key = jobSeenKey(config.REDIS_PREFIX, payload.runId, payload.type);
    const claimed = await redis.set(key, jobId, 'PX', seenTtlMs(payload.type), 'NX');
    if (claimed !== 'OK') {
      const owner = await redis.get(key);
      if (owner !== jobId) {
        log.error({ firstJobId: owner }, 'job rejected: this signed job was already taken under another job id (replay); nothing was done');
        throw new UnrecoverableError(`JOB_INVALID: replayed job (run ${payload.runId} ${payload.type} already ran as job ${owner ?? '?'})`);
      }
    }

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
    };

    try {
      if (job.attemptsMade === 0) await publisher.publish(target, { kind: 'started' });
      log.info({ attempt: job.attemptsMade + 1 }, 'job started');
      const result = await run(payload, ctx);
      await flush();
      await publisher.publish(target, { kind: 'result', result });
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
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }

    async function publishFailed(e: SetupError): Promise<void> {
      const event: ReportEvent = {
        kind: 'failed',
        error: { code: e.code, message: clip(e.message, 1000), ...(e.hint ? { hint: clip(e.hint, 1000) } : {}) },
      };
      try {
        await publisher.publish(target, event);
      } catch (publishError) {
        log.error({ err: toSetupError(publishError).message }, 'failed report not published');
      }
    }
  };
}
