import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeLockKey as certLockKey, createChangeLock as createCertLock, type LockScheduler } from '../../../agent/runtime/change-lock.ts';
import { runGuardedChange as runCertChange } from '../../../agent/runtime/guarded-change.ts';
import type { ReadyCerts } from '../../../agent/runtime/cert-requirements.ts';
import { silentLogger } from '../../../core/logger.ts';
import { connectRedis } from '../../../core/redis-connection.ts';
import { SetupError } from '../../../core/setup-error.ts';
import { deletePrefixedKeys } from '../../support/delete-prefixed-keys.ts';
import { testContext } from '../support/job-context.ts';

let redis: Redis;
const prefix = `t-${randomUUID()}`;
let n = 0;
const deployment = () => `d${(n += 1)}`;
const owner = { type: 'cert-rotate', runId: 'abcdef12', attempt: 2 } as const;

beforeAll(async () => {
  redis = await connectRedis('redis://127.0.0.1:6379');
});

afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

/** Renewals run by hand (no timers). */
function manualScheduler(): { schedule: LockScheduler; tick: () => Promise<void>; count: () => number } {
  const renewals: (() => void)[] = [];
  return {
    schedule: (renew) => {
      renewals.push(renew);
      return () => {
        const i = renewals.indexOf(renew);
        if (i >= 0) renewals.splice(i, 1);
      };
    },
    async tick() {
      renewals.forEach((renew) => renew());
      // Same connection: the renewals' commands are answered before this one.
      await redis.ping();
      await new Promise((resolve) => setImmediate(resolve));
    },
    count: () => renewals.length,
  };
}

/** The lock's Redis, whose EVAL (renew, release) fails while `broken` is set. */
function flakyRedis(): { redis: Redis; broken: { on: boolean } } {
  const broken = { on: false };
  const proxy = new Proxy(redis, {
    get(target, property) {
      if (property === 'eval' && broken.on) return () => Promise.reject(new Error('Connection is closed.'));
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { redis: proxy, broken };
}

describe('certificate-change lock', () => {
  it('gives every acquire its own random token: a second processing of the same attempt is busy, and each release deletes only its own value', async () => {
    const lock = createCertLock({ redis, prefix, logger: silentLogger(), schedule: manualScheduler().schedule });
    const d = deployment();
    const key = certLockKey(prefix, d);
    const first = await lock.acquire(d, owner);
    const value = await redis.get(key);
    expect(value).toMatch(/^cert-rotate:abcdef12:a2:[0-9a-f]{16}$/);
    const busy = await lock.acquire(d, owner).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(SetupError);
    expect((busy as SetupError).retryable).toBe(true);
    expect((busy as SetupError).message).toMatch(/: this same run and attempt, in another processing of the job/);
    expect(await redis.get(key)).toBe(value);

    // The first's lock expired and another processing took it: the first's release leaves it alone.
    await redis.del(key);
    const second = await lock.acquire(d, owner);
    const secondValue = await redis.get(key);
    expect(secondValue).not.toBe(value);
    expect(secondValue?.startsWith('cert-rotate:abcdef12:a2:')).toBe(true);
    await first.release();
    expect(await redis.get(key)).toBe(secondValue);
    await second.release();
    expect(await redis.exists(key)).toBe(0);
  });

  it('aborts its signal when a renewal finds the lock taken, and stops renewing', async () => {
    const clock = manualScheduler();
    const lock = createCertLock({ redis, prefix, logger: silentLogger(), schedule: clock.schedule });
    const d = deployment();
    const held = await lock.acquire(d, owner);
    await clock.tick();
    expect(held.signal.aborted).toBe(false);
    await redis.set(certLockKey(prefix, d), 'cert-rollback:other123:a1:0000000000000000', 'PX', 60_000);
    await clock.tick();
    expect(held.signal.aborted).toBe(true);
    expect(held.signal.reason).toBeInstanceOf(SetupError);
    expect((held.signal.reason as SetupError).retryable).toBe(true);
    expect((held.signal.reason as SetupError).message).toMatch(/lock of the deployment "d\d+" was lost while this job ran \(it expired or another holder has it\)/);
    expect(clock.count()).toBe(0);
    await held.release();
    expect(await redis.get(certLockKey(prefix, d))).toBe('cert-rollback:other123:a1:0000000000000000');
  });

  it('aborts only when renewals failed in a row until the lock expires before the next one (a success in between resets)', async () => {
    const clock = manualScheduler();
    const flaky = flakyRedis();
    // 120 s lock renewed every 30 s: after 3 failed renewals in a row the next one would come too late.
    const lock = createCertLock({ redis: flaky.redis, prefix, logger: silentLogger(), ttlMs: 120_000, renewMs: 30_000, schedule: clock.schedule });
    const held = await lock.acquire(deployment(), owner);
    flaky.broken.on = true;
    await clock.tick();
    await clock.tick();
    flaky.broken.on = false;
    await clock.tick();
    flaky.broken.on = true;
    await clock.tick();
    await clock.tick();
    expect(held.signal.aborted).toBe(false);
    await clock.tick();
    expect(held.signal.aborted).toBe(true);
    expect((held.signal.reason as SetupError).message).toMatch(/could not be renewed 3 times in a row and expires before the next renewal/);
    expect(clock.count()).toBe(0);
    flaky.broken.on = false;
    await held.release();
  });
});

describe('runCertChange', () => {
  const payload = { type: 'cert-rollback', runId: 'abcdef34', deployment: 'x', requestedBy: 'a', approvedBy: 'b', attempt: 1 } as const;

  it('gives the steps a signal that aborts when the lock is lost or the agent closes, with that reason', async () => {
    for (const cause of ['lock', 'agent'] as const) {
      const clock = manualScheduler();
      const lock = createCertLock({ redis, prefix, logger: silentLogger(), schedule: clock.schedule });
      const closing = new AbortController();
      const ctx = { ...testContext({} as never), signal: closing.signal };
      const d = deployment();
      const certs = { lock } as unknown as ReadyCerts;
      const seen = await runCertChange(ctx, certs, { ...payload, deployment: d }, async (guarded) => {
        expect(guarded.signal).not.toBe(ctx.signal);
        expect(guarded.signal.aborted).toBe(false);
        if (cause === 'lock') {
          await redis.del(certLockKey(prefix, d));
          await clock.tick();
        } else {
          closing.abort(new SetupError('INTERNAL', 'The agent is shutting down.', { retryable: true }));
        }
        return { aborted: guarded.signal.aborted, reason: (guarded.signal.reason as SetupError | undefined)?.message };
      });
      expect(seen.aborted).toBe(true);
      expect(seen.reason).toMatch(cause === 'lock' ? /lock .* was lost/ : /shutting down/);
      expect(await redis.exists(certLockKey(prefix, d))).toBe(0);
    }
  });
});
