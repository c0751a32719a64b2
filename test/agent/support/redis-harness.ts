import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { loadAgentConfig, type AgentConfig } from '../../../agent/runtime/config.ts';
import { startAgent, type AgentDeps, type RunningAgent } from '../../../agent/runtime/start-agent.ts';
import { silentLogger } from '../../../core/logger.ts';
import { connectRedis } from '../../../core/redis-connection.ts';
import { jobQueueName, reportQueueName } from '../../../jobs/deployment.ts';
import { EnvelopeSigner } from '../../../jobs/envelope-signer.ts';
import { verifyReport } from '../../../jobs/job-options.ts';
import type { Report } from '../../../jobs/job-types.ts';
import { deletePrefixedKeys } from '../../support/delete-prefixed-keys.ts';

export const SIGNING_KEY = 'test-signing-key-0123456789-abcdefghij';

/** Real Redis with a unique prefix, the jobs queue, a reports collector, and cleanup. */
export interface Harness {
  prefix: string;
  redis: Redis;
  signer: EnvelopeSigner;
  jobs: Queue;
  reports: Report[];
  config: AgentConfig;
  agent: RunningAgent | undefined;
  start(env: Record<string, string>, deps?: AgentDeps): Promise<RunningAgent>;
  close(): Promise<void>;
}

export async function createHarness(): Promise<Harness> {
  const prefix = `t-${randomUUID()}`;
  const redis = await connectRedis('redis://127.0.0.1:6379');
  const signer = new EnvelopeSigner({ key: SIGNING_KEY });
  const jobs = new Queue(jobQueueName('default'), { connection: redis, prefix });
  const reports: Report[] = [];
  const reportWorker = new Worker(
    reportQueueName('default'),
    (job: Job) => {
      reports.push(verifyReport(signer, job.data));
      return Promise.resolve();
    },
    { connection: redis, prefix },
  );
  reportWorker.on('error', () => undefined);
  const harness: Harness = {
    prefix,
    redis,
    signer,
    jobs,
    reports,
    config: undefined as unknown as AgentConfig,
    agent: undefined,
    async start(env, deps = {}) {
      harness.config = loadAgentConfig({
        REDIS_PREFIX: prefix,
        JOB_SIGNING_KEY: SIGNING_KEY,
        CRM_AUTH: 'none',
        PROGRESS_INTERVAL_MS: '0',
        HEARTBEAT_INTERVAL_MS: '500',
        LOG_LEVEL: 'silent',
        ...env,
      });
      harness.agent = await startAgent(harness.config, { redis, logger: silentLogger(), closeTimeoutMs: 2_000, ...deps });
      return harness.agent;
    },
    async close() {
      await harness.agent?.close();
      await reportWorker.close();
      await jobs.close();
      await deletePrefixedKeys(redis, prefix);
      await redis.quit();
    },
  };
  return harness;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits until the job is completed or failed; returns its final state. */
export async function settled(queue: Queue, jobId: string, timeoutMs = 15_000): Promise<{ state: string; job: Job }> {
  return waitFor(`job ${jobId} to settle`, async () => {
    const job = await queue.getJob(jobId);
    if (!job) return undefined;
    const state = await job.getState();
    if (state !== 'completed' && state !== 'failed') return undefined;
    // Read the job again: the copy above may predate the state change (no failedReason/returnvalue yet).
    const final = await queue.getJob(jobId);
    return final ? { state, job: final } : undefined;
  }, timeoutMs);
}
