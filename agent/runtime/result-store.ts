import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { jobResultSchema, type JobResult, type JobType } from '../../jobs/job-types.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

/** Redis key where a job's computed result waits until its result report is published. */
export function jobResultKey(prefix: string, runId: string, type: JobType): string {
  return redisKeys.jobResult(prefix, runId, type);
}

export interface JobResultStore {
  /** Keeps `result` for the job instance `claim` (see agent-worker.ts), for `ttlMs`. */
  save(runId: string, type: JobType, claim: string, result: JobResult, ttlMs: number): Promise<void>;
  /** The result this job instance computed in an earlier attempt, if any (and intact). */
  load(runId: string, type: JobType, claim: string): Promise<JobResult | undefined>;
}

const storedSchema = z.object({ claim: z.string(), result: z.string(), mac: z.string() }).strict();

/**
 * A retry of a job whose work is done (only the result report failed to publish) publishes the
 * stored result instead of doing the work again. The stored value is MACed with the signing key
 * and bound to the job instance: the agent signs what it publishes, so a result written into
 * Redis by someone else must never reach a signed report.
 */
export function createJobResultStore(options: { redis: Redis; prefix: string; signingKey: string }): JobResultStore {
  const key = Buffer.from(options.signingKey, 'utf8');
  const mac = (redisKey: string, claim: string, resultJson: string) =>
    createHmac('sha256', key).update(`job-result\n${redisKey}\n${claim}\n${resultJson}`).digest('base64url');

  return {
    async save(runId, type, claim, result, ttlMs) {
      const redisKey = jobResultKey(options.prefix, runId, type);
      const json = JSON.stringify(result);
      await options.redis.set(redisKey, JSON.stringify({ claim, result: json, mac: mac(redisKey, claim, json) }), 'PX', ttlMs);
    },
    async load(runId, type, claim) {
      const redisKey = jobResultKey(options.prefix, runId, type);
      const raw = await options.redis.get(redisKey);
      if (raw === null) return undefined;
      let stored: z.infer<typeof storedSchema>;
      try {
        stored = storedSchema.parse(JSON.parse(raw));
      } catch {
        return undefined;
      }
      if (stored.claim !== claim) return undefined;
      const expected = Buffer.from(mac(redisKey, claim, stored.result));
      const actual = Buffer.from(stored.mac);
      if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
      let parsed: unknown;
      try {
        parsed = JSON.parse(stored.result);
      } catch {
        return undefined;
      }
      const result = jobResultSchema.safeParse(parsed);
      return result.success && result.data.type === type ? result.data : undefined;
    },
  };
}
