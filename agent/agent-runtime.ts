import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger, type Logger } from '../core/logger.ts';
import { connectRedis, redactUrl } from '../core/redis-connection.ts';
import { SetupError } from '../core/setup-error.ts';
import { agentHeartbeatKey, jobQueueName } from '../jobs/deployment.ts';
import { EnvelopeSigner } from '../jobs/envelope-signer.ts';
import type { AgentConfig } from './agent-config.ts';
import { createJobProcessor } from './agent-worker.ts';
import { createCrmClient, type CrmApi } from './crm-client.ts';
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

/**
 * Starts the on-premises agent: a BullMQ worker on the deployment's jobs queue that verifies each
 * job, runs it against CRM and publishes signed reports, plus a heartbeat in Redis.
 */
export async function startAgent(config: AgentConfig, deps: AgentDeps = {}): Promise<RunningAgent> {
  const logger = deps.logger ?? createLogger({ name: 'agent', level: config.LOG_LEVEL });
  const now = deps.now ?? Date.now;
  const ownRedis = deps.redis === undefined;
  const redis = deps.redis ?? (await connectRedis(config.REDIS_URL));
  redis.on('error', (error: Error) => logger.warn({ err: error.message }, 'Redis connection problem'));
  const ownCrm = deps.crmClient === undefined;
  const crm = deps.crmClient ?? createCrmClient(config, { logger: logger.child({ component: 'crm' }) });
  const signer = new EnvelopeSigner({ key: config.JOB_SIGNING_KEY, now });
  const publisher = createReportPublisher({ redis, prefix: config.REDIS_PREFIX, deployment: config.DEPLOYMENT, signer, now });
  const shutdown = new AbortController();

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
  });
  const queueName = jobQueueName(config.DEPLOYMENT);
  const worker = new Worker(queueName, processor, {
    connection: redis,
    prefix: config.REDIS_PREFIX,
    concurrency: config.AGENT_CONCURRENCY,
  });
  worker.on('error', (error) => logger.error({ err: error.message }, 'worker error'));
  worker.on('failed', (job, error) => logger.debug({ jobId: job?.id, err: error.message }, 'job attempt failed'));

  const heartbeatKey = agentHeartbeatKey(config.REDIS_PREFIX, config.DEPLOYMENT);
  const beat = async () => {
    try {
      await redis.set(heartbeatKey, new Date(now()).toISOString(), 'PX', 3 * config.HEARTBEAT_INTERVAL_MS);
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'heartbeat not written');
    }
  };
  await beat();
  const heartbeat = setInterval(() => void beat(), config.HEARTBEAT_INTERVAL_MS);
  heartbeat.unref();

  await worker.waitUntilReady();
  logger.info(
    { redis: redactUrl(config.REDIS_URL), prefix: config.REDIS_PREFIX, queue: queueName, crm: config.CRM_URL, crmAuth: config.CRM_AUTH, concurrency: config.AGENT_CONCURRENCY },
    'agent started',
  );

  let closing: Promise<void> | undefined;
  const closeTimeoutMs = deps.closeTimeoutMs ?? 10_000;
  return {
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        // Stop taking jobs; long waits end and their jobs are retried later (here or by another agent).
        const closed = worker.close();
        shutdown.abort(new SetupError('INTERNAL', 'The agent is shutting down.', { retryable: true }));
        const timedOut = await Promise.race([closed.then(() => false), delay(closeTimeoutMs, true, { ref: false })]);
        if (timedOut) {
          logger.warn({ closeTimeoutMs }, 'jobs still running at shutdown; stopping them');
          await worker.close(true);
        }
        await publisher.close();
        if (ownCrm) crm.close();
        if (ownRedis) await redis.quit().catch(() => undefined);
        logger.info('agent stopped');
      })();
      return closing;
    },
  };
}
