import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { runScripts } from './run-scripts.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

/**
 * A run card's lock, `<prefix>:run-lock:<runId>`: every write of the run card (progress, final,
 * timer, click) holds it, so a slow write (429 retries) cannot land after a newer one.
 */
export class CardLock {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  key(runId: string): string {
    return redisKeys.cardLock(this.#prefix, runId);
  }

  /**
   * Takes the lock: returns the holder's token, or undefined when another writer holds it. The lock
   * expires after `ttlMs` if its holder dies.
   */
  async acquire(runId: string, ttlMs: number): Promise<string | undefined> {
    const token = randomUUID();
    const ok = await this.#redis.set(this.key(runId), token, 'PX', Math.max(1, Math.round(ttlMs)), 'NX');
    return ok === 'OK' ? token : undefined;
  }

  /** Releases the lock if this token still holds it; false when it had expired (another writer may have written meanwhile). */
  async release(runId: string, token: string): Promise<boolean> {
    const n = await runScripts.releaseLock.run(this.#redis, [this.key(runId)], [token]);
    return n === 1;
  }
}
