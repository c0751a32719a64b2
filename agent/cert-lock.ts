import type { Redis } from 'ioredis';
import type { Logger } from '../core/logger.ts';
import { SetupError } from '../core/setup-error.ts';

/** Redis key of the certificate-change lock of one deployment. */
export function certLockKey(prefix: string, deployment: string): string {
  return `${prefix}:cert-lock:${deployment}`;
}

/** Who holds the lock: one attempt of one run (a BullMQ retry of that attempt is the same holder). */
export interface CertLockOwner {
  type: 'cert-rotate' | 'cert-rollback';
  runId: string;
  attempt: number;
}

export interface HeldCertLock {
  /** Extends the TTL while this holder still has the lock; false when it lost it. */
  renew(): Promise<boolean>;
  /** Stops the renewal and deletes the lock if this holder still has it (compare-and-delete). */
  release(): Promise<void>;
}

export interface CertLock {
  /**
   * Takes the lock of `deployment` for `owner`, or throws a retryable STEP_FAILED naming the run
   * that holds it (BullMQ tries again with backoff; the last attempt reports it).
   */
  acquire(deployment: string, owner: CertLockOwner): Promise<HeldCertLock>;
}

/** Renews the lock every `ms`; returns the function that stops it (tests pass their own). */
export type LockScheduler = (renew: () => void, ms: number) => () => void;

export interface CertLockOptions {
  redis: Redis;
  prefix: string;
  logger: Logger;
  /** Lock lifetime without renewal (default 2 min: a crashed agent frees it soon). */
  ttlMs?: number;
  /** Renewal period (default 30 s). */
  renewMs?: number;
  schedule?: LockScheduler;
}

export const CERT_LOCK_TTL_MS = 2 * 60_000;
export const CERT_LOCK_RENEW_MS = 30_000;

const intervalScheduler: LockScheduler = (renew, ms) => {
  const timer = setInterval(renew, ms);
  timer.unref();
  return () => clearInterval(timer);
};

/** PEXPIRE only while the value is still ours. */
const renewScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

/** DEL only while the value is still ours. */
const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

const valueOf = (owner: CertLockOwner) => `${owner.type}:${owner.runId}:a${owner.attempt}`;

/** "cert-rotate:abc:a2" → "the certificate rotation run abc (attempt 2)". */
function describeHolder(value: string | null): string {
  const m = value === null ? null : /^(cert-rotate|cert-rollback):([a-z0-9]+):a(\d+)$/.exec(value);
  if (!m) return 'another certificate change';
  return `the certificate ${m[1] === 'cert-rotate' ? 'rotation' : 'rollback'} run ${m[2] ?? '?'} (attempt ${m[3] ?? '?'})`;
}

/**
 * One certificate change (rotation or rollback) at a time per deployment: a Redis key set NX with
 * a TTL that is renewed while the job runs and deleted at its end only by its holder. A crashed
 * agent's lock expires after `ttlMs`; a BullMQ retry of the same attempt takes its own lock over.
 */
export function createCertLock(options: CertLockOptions): CertLock {
  const ttlMs = options.ttlMs ?? CERT_LOCK_TTL_MS;
  const renewMs = options.renewMs ?? CERT_LOCK_RENEW_MS;
  const schedule = options.schedule ?? intervalScheduler;
  const { redis } = options;

  return {
    async acquire(deployment, owner) {
      const key = certLockKey(options.prefix, deployment);
      const value = valueOf(owner);
      const log = options.logger.child({ lock: key, runId: owner.runId, attempt: owner.attempt });
      const taken = await redis.set(key, value, 'PX', ttlMs, 'NX');
      if (taken !== 'OK') {
        const holder = await redis.get(key);
        // A retry of this same attempt (after a crash or a retryable failure): the lock is already ours.
        const ours = holder === value && (await redis.eval(renewScript, 1, key, value, String(ttlMs))) === 1;
        if (!ours) {
          log.warn({ holder }, 'certificate change refused: another one holds the lock');
          throw new SetupError(
            'STEP_FAILED',
            `Another certificate change is running on the deployment "${deployment}": ${describeHolder(holder)}. One certificate change at a time; nothing was changed.`,
            {
              hint: 'Wait until that run finishes or halts (its card shows it), then Resume this one or ask for it again.',
              retryable: true,
              details: { lockHolder: holder },
            },
          );
        }
      }
      const renew = async (): Promise<boolean> => (await redis.eval(renewScript, 1, key, value, String(ttlMs))) === 1;
      const stop = schedule(() => {
        renew().then(
          (held) => {
            if (!held) log.warn('the certificate-change lock was lost (expired or taken) while the job ran');
          },
          (error: unknown) => log.warn({ err: (error as Error).message }, 'the certificate-change lock could not be renewed'),
        );
      }, renewMs);
      log.info('certificate-change lock taken');
      return {
        renew,
        async release() {
          stop();
          try {
            await redis.eval(releaseScript, 1, key, value);
          } catch (error) {
            // It expires on its own within ttlMs.
            log.warn({ err: (error as Error).message }, 'the certificate-change lock could not be released');
          }
        },
      };
    },
  };
}
