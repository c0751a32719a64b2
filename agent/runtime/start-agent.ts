import { setTimeout as delay } from 'node:timers/promises';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger, type Logger } from '../../core/logger.ts';
import { connectRedis, redactUrl } from '../../core/redis-connection.ts';
import { SetupError } from '../../core/setup-error.ts';
import { agentHeartbeatKey, jobQueueName } from '../../jobs/deployment.ts';
import { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import type { JobResult } from '../../jobs/job-types.ts';
import type { AgentConfig } from './config.ts';
import { createJobProcessor, createStalledReporter } from './worker.ts';
import { createCertServices, type CertServicesHandle } from './cert-services.ts';
import { createCrmClient, type CrmApi } from '../adapters/crm/client.ts';
import type { GraphApi } from '../adapters/graph/api.ts';
import type { PowershellApi } from './job-context.ts';
import { createReportPublisher } from './report-publisher.ts';

export interface AgentDeps {
  /** A connection made with core/redis-connection.ts `connectRedis` (the caller closes it). */
  redis?: Redis;
  logger?: Logger;
  crmClient?: CrmApi;
  now?: () => number;
  /** Waits used by Test & Enable polling. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** How long close() waits for running jobs before it stops them. */
  closeTimeoutMs?: number;
  /** The certificate jobs' PowerShell runner (default: built from POWERSHELL, POWERSHELL_TIMEOUT_MS). */
  powershell?: PowershellApi;
  /** Environment of the PowerShell child processes (default process.env). */
  powershellEnv?: NodeJS.ProcessEnv;
  /** The certificate jobs' Graph client (default: built from GRAPH_* on the first job that needs it). */
  graph?: GraphApi;
}

export interface RunningAgent {
  close(): Promise<void>;
}

/** Waits; when the agent closes, rejects with the shutdown reason (a retryable SetupError). */
const abortableSleep = async (ms: number, signal: AbortSignal): Promise<void> => {
  try {
    await delay(ms, undefined, { signal });
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  }
};

/** Resolves true when `promise` settles within `ms`, false otherwise (never rejects). */
const settlesWithin = async (promise: Promise<unknown>, ms: number): Promise<boolean> => {
  const settled = promise.then(
    () => true,
    () => true,
  );
  return Promise.race([settled, delay(ms, false, { ref: false })]);
};

/**
 * Starts the on-premises agent: a BullMQ worker on the deployment's jobs queue that verifies each
 * job, runs it against CRM and publishes signed reports, plus a heartbeat in Redis. If it cannot
 * start, it closes what it opened (the Redis connection too, when it made it) and throws.
 */
export async function startAgent(config: AgentConfig, deps: AgentDeps = {}): Promise<RunningAgent> {
  const logger = deps.logger ?? createLogger({ name: 'agent', level: config.LOG_LEVEL });
  const now = deps.now ?? Date.now;
  const ownRedis = deps.redis === undefined;
  const redis = deps.redis ?? (await connectRedis(config.REDIS_URL));
  redis.on('error', (error: Error) => logger.warn({ err: error.message }, 'Redis connection problem'));
  let certs: CertServicesHandle;
  try {
    certs = await createCertServices(config, {
      redis,
      logger: logger.child({ component: 'certs' }),
      ...(deps.powershell ? { powershell: deps.powershell } : {}),
      ...(deps.powershellEnv ? { powershellEnv: deps.powershellEnv } : {}),
      ...(deps.graph ? { graph: deps.graph } : {}),
    });
  } catch (error) {
    if (ownRedis) redis.disconnect();
    throw error;
  }
  const ownCrm = deps.crmClient === undefined;
  const crm = deps.crmClient ?? createCrmClient(config, { logger: logger.child({ component: 'crm' }) });
  const signer = new EnvelopeSigner({ key: config.JOB_SIGNING_KEY, now });
  const publisher = createReportPublisher({ redis, prefix: config.REDIS_PREFIX, deployment: config.DEPLOYMENT, signer, now });
  const shutdown = new AbortController();
  const closeTimeoutMs = deps.closeTimeoutMs ?? 10_000;

  const processor = createJobProcessor({
    config,
    redis,
    signer,
    crm,
    publisher,
    logger,
    now,
    sleep: deps.sleep ?? abortableSleep,
    signal: shutdown.signal,
    certs: certs.services,
  });

  /**
   * The jobs this agent is running, each with a way to give it back to the queue. BullMQ's own
   * close(true) cannot follow a close() (it returns the pending close), so a job that ignores the
   * shutdown signal is handed back here: moved to delayed (ready at once, no attempt used) so
   * another agent can take it, and its processor promise settled so BullMQ's close can finish.
   */
  const running = new Set<() => Promise<void>>();
  const trackedProcessor = (job: Job, token?: string): Promise<JobResult> =>
    new Promise<JobResult>((resolve, reject) => {
      const giveBack = async () => {
        try {
          await job.moveToDelayed(Date.now(), token);
          reject(new DelayedError('The agent stopped while this job was running; it is back in the queue.'));
        } catch (error) {
          reject(new Error(`INTERNAL: The agent is shutting down (${(error as Error).message}).`, { cause: error }));
        }
      };
      running.add(giveBack);
      processor(job)
        .then(resolve, reject)
        .finally(() => running.delete(giveBack))
        .catch(() => undefined);
    });

  const queueName = jobQueueName(config.DEPLOYMENT);
  const worker = new Worker(queueName, trackedProcessor, {
    connection: redis,
    prefix: config.REDIS_PREFIX,
    concurrency: config.AGENT_CONCURRENCY,
    // Stalled-job recovery: a killed agent's job is handed to the next worker about this long after
    // (the runbook's journal skips the steps done; the interrupted step checks before it changes).
    lockDuration: config.AGENT_LOCK_DURATION_MS,
    stalledInterval: config.AGENT_LOCK_DURATION_MS,
    maxStalledCount: 2,
  });
  worker.on('error', (error) => logger.error({ err: error.message }, 'worker error'));
  // A job that stalled too often is failed without its processor: its failed report is published here.
  const reportStalled = createStalledReporter({ config, redis, signer, publisher, logger });
  const stalledReports = new Set<Promise<void>>();
  worker.on('failed', (job, error) => {
    logger.debug({ jobId: job?.id, err: error.message }, 'job attempt failed');
    if (!job) return;
    const p = reportStalled(job, error).catch((reportError: unknown) => logger.error({ err: (reportError as Error).message }, 'stalled job not reported'));
    stalledReports.add(p);
    void p.finally(() => stalledReports.delete(p));
  });

  const heartbeatKey = agentHeartbeatKey(config.REDIS_PREFIX, config.DEPLOYMENT);
  const beat = async () => {
    try {
      await redis.set(heartbeatKey, new Date(now()).toISOString(), 'PX', 3 * config.HEARTBEAT_INTERVAL_MS);
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'heartbeat not written');
    }
  };
  let heartbeat: NodeJS.Timeout | undefined;

  /** Closes what this agent opened; each step bounded, so it always finishes. */
  const closeOwned = async () => {
    if (!(await settlesWithin(Promise.all([...stalledReports]), closeTimeoutMs))) logger.warn('a stalled job report did not finish in time');
    if (!(await settlesWithin(publisher.close(), closeTimeoutMs))) logger.warn('reports queue did not close in time');
    if (ownCrm) crm.close();
    if (!(await settlesWithin(certs.close(), closeTimeoutMs))) logger.warn('Graph client did not close in time');
    if (ownRedis && !(await settlesWithin(redis.quit(), closeTimeoutMs))) redis.disconnect();
  };

  try {
    await beat();
    heartbeat = setInterval(() => void beat(), config.HEARTBEAT_INTERVAL_MS);
    heartbeat.unref();
    await worker.waitUntilReady();
  } catch (error) {
    clearInterval(heartbeat);
    shutdown.abort(new SetupError('INTERNAL', 'The agent could not start.', { retryable: true }));
    await settlesWithin(worker.close(true), closeTimeoutMs);
    await closeOwned();
    throw error;
  }
  logger.info(
    {
      redis: redactUrl(config.REDIS_URL),
      prefix: config.REDIS_PREFIX,
      queue: queueName,
      crm: config.CRM_URL,
      crmAuth: config.CRM_AUTH,
      concurrency: config.AGENT_CONCURRENCY,
      asyncServers: config.ASYNC_SERVERS,
      graph: certs.services.graphMissing.length === 0 ? 'configured' : 'not configured',
    },
    'agent started',
  );

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        // Long waits (Test & Enable polling, backoff) end and their jobs are retried later, here
        // or by another agent; then BullMQ stops taking jobs and waits for the running ones.
        shutdown.abort(new SetupError('INTERNAL', 'The agent is shutting down.', { retryable: true }));
        const closed = worker.close();
        if (!(await settlesWithin(closed, closeTimeoutMs))) {
          logger.warn({ closeTimeoutMs, running: running.size }, 'jobs still running at shutdown; giving them back to the queue');
          await Promise.all([...running].map((giveBack) => giveBack()));
          if (!(await settlesWithin(closed, closeTimeoutMs))) logger.error('the worker did not close in time; closing the connections anyway');
        }
        await closeOwned();
        logger.info('agent stopped');
      })();
      return closing;
    },
  };
}
