import { randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../agent/runtime/config.ts';
import { createJobProcessor, jobSeenKey, type JobProcessorDeps } from '../../../agent/runtime/worker.ts';
import { jobResultKey } from '../../../agent/runtime/result-store.ts';
import type { ReportPublisher, ReportTarget } from '../../../agent/runtime/report-publisher.ts';
import { silentLogger } from '../../../core/logger.ts';
import { connectRedis } from '../../../core/redis-connection.ts';
import { EnvelopeSigner } from '../../../jobs/envelope-signer.ts';
import { signJob } from '../../../jobs/job-options.ts';
import type { ApproveResult, JobPayload, ReportEvent } from '../../../jobs/job-types.ts';
import { FakeCrm } from '../support/fake-crm.ts';
import { SIGNING_KEY } from '../support/redis-harness.ts';

/** The processor on its own, with real Redis (replay guard, stored result) and a scripted publisher. */
let redis: Redis;
let prefix: string;

beforeEach(async () => {
  redis = await connectRedis('redis://127.0.0.1:6379');
  prefix = `t-${randomUUID()}`;
});

afterEach(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const payload: JobPayload = {
  type: 'approve',
  runId: 'run0000009',
  deployment: 'default',
  requestedBy: 'aaaaaaaa-0000-0000-0000-000000000001',
  approvedBy: 'aaaaaaaa-0000-0000-0000-000000000002',
  plannedCount: 10,
  filter: { kind: 'pending' },
};
const signer = new EnvelopeSigner({ key: SIGNING_KEY });
const envelope = signJob(signer, payload);

/** What BullMQ hands the processor: one job instance (id + timestamp) at some attempt. */
const bullJob = (attemptsMade: number, timestamp = 1_750_000_000_000, id = 'run0000009-approve') =>
  ({ id, name: 'approve', data: envelope, timestamp, attemptsMade, opts: { attempts: 5 } }) as unknown as Job;

const resultOf = (approved: number): ApproveResult => ({
  type: 'approve',
  matched: 10,
  approved,
  alreadyApproved: 10 - approved,
  failed: 0,
  failures: [],
  crmRequests: 3,
  durationMs: 5,
});

class ScriptedPublisher implements ReportPublisher {
  readonly published: ReportEvent[] = [];
  /** How many more `result` reports fail before one goes through. */
  failResults = 0;
  publish(_target: ReportTarget, event: ReportEvent): Promise<number> {
    if (event.kind === 'result' && this.failResults > 0) {
      this.failResults -= 1;
      return Promise.reject(new Error('Connection is closed.'));
    }
    this.published.push(event);
    return Promise.resolve(this.published.length);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function processor(publisher: ReportPublisher, runs: { count: number }, sleeps: number[] = []) {
  const deps: JobProcessorDeps = {
    config: loadAgentConfig({ REDIS_PREFIX: prefix, JOB_SIGNING_KEY: SIGNING_KEY, CRM_URL: 'http://crm.invalid/org', CRM_AUTH: 'none' }),
    redis,
    signer,
    crm: new FakeCrm({ get: () => [[]] }),
    publisher,
    logger: silentLogger(),
    now: Date.now,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    signal: new AbortController().signal,
    run: () => {
      runs.count += 1;
      // The first run approves all 10; a second run would find them approved.
      return Promise.resolve(resultOf(runs.count === 1 ? 10 : 0));
    },
  };
  return createJobProcessor(deps);
}

describe('job processor: result publishing', () => {
  it('retries publishing the result in place with bounded backoff, without running the job again', async () => {
    const publisher = new ScriptedPublisher();
    publisher.failResults = 2;
    const runs = { count: 0 };
    const sleeps: number[] = [];
    const result = await processor(publisher, runs, sleeps)(bullJob(0));
    expect(result).toMatchObject({ approved: 10 });
    expect(runs.count).toBe(1);
    expect(sleeps).toEqual([250, 1_000]);
    expect(publisher.published.map((e) => e.kind)).toEqual(['started', 'result']);
  });

  it('when publishing keeps failing, lets BullMQ retry and the retry publishes the stored result instead of redoing the work', async () => {
    const runs = { count: 0 };
    const failing = new ScriptedPublisher();
    failing.failResults = 100;
    const sleeps: number[] = [];
    const error = await processor(failing, runs, sleeps)(bullJob(0)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(UnrecoverableError);
    expect(sleeps).toEqual([250, 1_000, 4_000]);
    expect(runs.count).toBe(1);
    expect(await redis.pttl(jobResultKey(prefix, payload.runId, 'approve'))).toBeGreaterThan(24 * 60 * 60_000);

    const working = new ScriptedPublisher();
    const retried = await processor(working, runs)(bullJob(1));
    expect(runs.count).toBe(1);
    expect(retried).toMatchObject({ approved: 10, alreadyApproved: 0 });
    expect(working.published).toEqual([{ kind: 'result', result: resultOf(10) }]);
  });

  it('does not trust a stored result it did not write (tampered, or from another job instance)', async () => {
    const runs = { count: 0 };
    const failing = new ScriptedPublisher();
    failing.failResults = 100;
    await processor(failing, runs)(bullJob(0)).catch(() => undefined);
    const key = jobResultKey(prefix, payload.runId, 'approve');
    const stored = JSON.parse((await redis.get(key)) ?? '{}') as { result: string };
    await redis.set(key, JSON.stringify({ ...stored, result: JSON.stringify(resultOf(999)) }));

    const working = new ScriptedPublisher();
    const result = await processor(working, runs)(bullJob(1));
    expect(runs.count).toBe(2);
    expect(result).toMatchObject({ approved: 0 });
    expect(working.published).toEqual([{ kind: 'result', result: resultOf(0) }]);
  });
});

describe('job processor: replay guard', () => {
  it('lets a retry of the same job instance through, and refuses the job added again after it finished', async () => {
    const runs = { count: 0 };
    const publisher = new ScriptedPublisher();
    const crmFailsOnce = createJobProcessor({
      config: loadAgentConfig({ REDIS_PREFIX: prefix, JOB_SIGNING_KEY: SIGNING_KEY, CRM_URL: 'http://crm.invalid/org', CRM_AUTH: 'none' }),
      redis,
      signer,
      crm: new FakeCrm({ get: () => [[]] }),
      publisher,
      logger: silentLogger(),
      now: Date.now,
      sleep: () => Promise.resolve(),
      signal: new AbortController().signal,
      run: () => {
        runs.count += 1;
        if (runs.count === 1) return Promise.reject(new Error('socket hang up'));
        return Promise.resolve(resultOf(10));
      },
    });
    await expect(crmFailsOnce(bullJob(0))).rejects.not.toBeInstanceOf(UnrecoverableError);
    expect(await redis.get(jobSeenKey(prefix, payload.runId, 'approve'))).toBe('run0000009-approve:1750000000000');
    await expect(crmFailsOnce(bullJob(1))).resolves.toMatchObject({ approved: 10 });
    expect(await redis.get(jobSeenKey(prefix, payload.runId, 'approve'))).toBe('run0000009-approve:1750000000000:done');

    // The same envelope added again under the same job id gets a new timestamp; even the old
    // timestamp (a copied job) is refused once the job finished. Nothing runs, nothing is reported.
    const reportsBefore = publisher.published.length;
    for (const again of [bullJob(0, 1_750_000_999_000), bullJob(0), bullJob(2)]) {
      const error = await crmFailsOnce(again).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnrecoverableError);
      expect((error as Error).message).toMatch(/^JOB_INVALID: replayed job/);
    }
    expect(runs.count).toBe(2);
    expect(publisher.published).toHaveLength(reportsBefore);
  });
});
