import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/logger.ts';
import { SetupError } from '../../core/setup-error.ts';
import type { JobContext } from './job-context.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

/**
 * Redis key of the deployment's change lock (certificate rotations and rollbacks, runbook runs). The
 * key text `cert-lock:<deployment>` is older than the runbook and stays as it is.
 */
export function changeLockKey(prefix: string, deployment: string): string {
  return redisKeys.changeLock(prefix, deployment);
}

/**
 * Whose job holds the lock: one attempt of one run. Each acquire adds its own random token, so two
 * processings of the same attempt (BullMQ hands a stalled job to a second worker while the first
 * still runs it) are two holders, and the second is refused as busy.
 */
export interface ChangeLockOwner {
  /** A rotation, a rollback, or a runbook run (`run setup` may change the S2S certificate). */
  type: 'cert-rotate' | 'cert-rollback' | 'setup-run';
  runId: string;
  attempt: number;
}

export interface HeldChangeLock {
  /**
   * Aborted when this holder lost the lock (a renewal found another value or none, or renewals
   * failed until it has surely expired); its reason is a retryable STEP_FAILED. The certificate job
   * passes it into its steps so the next step does not start.
   */
  signal: AbortSignal;
  /** Extends the TTL while this holder still has the lock; false when it lost it (and `signal` aborts). */
  renew(): Promise<boolean>;
  /** Stops the renewal and deletes the lock if this holder still has it (compare-and-delete). */
  release(): Promise<void>;
}

export interface ChangeLock {
  /**
   * Takes the lock of `deployment` for `owner`, or throws a retryable STEP_FAILED naming the run
   * that holds it (BullMQ tries again with backoff; the last attempt reports it).
   */
  acquire(deployment: string, owner: ChangeLockOwner): Promise<HeldChangeLock>;
}

/** Renews the lock every `ms`; returns the function that stops it (tests pass their own). */
export type LockScheduler = (renew: () => void, ms: number) => () => void;

export interface ChangeLockOptions {
  redis: Redis;
  prefix: string;
  logger: Logger;
  /** Lock lifetime without renewal (CERT_LOCK_TTL_MS; default 2 min: a crashed agent frees it soon). */
  ttlMs?: number;
  /** Renewal period (default 30 s). */
  renewMs?: number;
  schedule?: LockScheduler;
  /** The random part of a holder's value (default 16 hex digits from crypto.randomBytes; tests pass their own). */
  token?: () => string;
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

const randomToken = () => randomBytes(8).toString('hex');

/** "cert-rotate:<runId>:a<attempt>": who the holder is; the value adds ":<token>" for this processing. */
const holderOf = (owner: ChangeLockOwner) => `${owner.type}:${owner.runId}:a${owner.attempt}`;

const valuePattern = /^(cert-rotate|cert-rollback|setup-run):([a-z0-9]+):a(\d+)(?::[A-Za-z0-9_-]+)?$/;

/** "cert-rotate:abc:a2:<token>" → "the certificate rotation run abc (attempt 2)". */
function describeHolder(value: string | null, own: string, ttlMs: number): string {
  const m = value === null ? null : valuePattern.exec(value);
  if (!m) return 'another run';
  if (`${m[1] ?? ''}:${m[2] ?? ''}:a${m[3] ?? ''}` === own) {
    return `this same run and attempt, in another processing of the job (BullMQ handed it on while it still ran, or an agent stopped while running it: its lock expires within ${Math.ceil(ttlMs / 1000)} s)`;
  }
  const kind = m[1] === 'cert-rotate' ? 'the certificate rotation' : m[1] === 'setup-run' ? 'the set-up' : 'the certificate rollback';
  return `${kind} run ${m[2] ?? '?'} (attempt ${m[3] ?? '?'})`;
}

/**
 * One change at a time per deployment (a certificate rotation or rollback, a runbook run): a Redis key set NX with
 * a TTL that is renewed while the job runs and deleted at its end only by its holder. The value is
 * the run, the attempt and a random token of this acquire: nobody takes a held lock over, not even
 * another processing of the same attempt (it fails retryably and BullMQ's backoff outlasts the TTL
 * of a crashed agent's lock). A holder that loses its lock is told through `signal`.
 */
export function createChangeLock(options: ChangeLockOptions): ChangeLock {
  const ttlMs = options.ttlMs ?? CERT_LOCK_TTL_MS;
  // Renewed well within the TTL (CERT_LOCK_TTL_MS may be shorter than the default period).
  const renewMs = options.renewMs ?? Math.min(CERT_LOCK_RENEW_MS, Math.max(250, Math.floor(ttlMs / 4)));
  const schedule = options.schedule ?? intervalScheduler;
  const token = options.token ?? randomToken;
  const { redis } = options;

  return {
    async acquire(deployment, owner) {
      const key = changeLockKey(options.prefix, deployment);
      const holder = holderOf(owner);
      const value = `${holder}:${token()}`;
      const log = options.logger.child({ lock: key, runId: owner.runId, attempt: owner.attempt });
      const taken = await redis.set(key, value, 'PX', ttlMs, 'NX');
      if (taken !== 'OK') {
        const current = await redis.get(key);
        log.warn({ holder: current }, 'certificate change refused: another one holds the lock');
        throw new SetupError(
          'STEP_FAILED',
          `Another change is running on the deployment "${deployment}": ${describeHolder(current, holder, ttlMs)}. Certificate rotations, rollbacks and set-up runs (run setup, profile create, tenant set, configure mailboxes) go one at a time; nothing was changed.`,
          {
            hint: 'Wait until that run finishes or halts (its card shows it), then Resume this one or ask for it again.',
            retryable: true,
            details: { lockHolder: current },
          },
        );
      }

      const lost = new AbortController();
      let stopped = false;
      // Renewal stops at release or when the lock is lost, once (stopRenewing is set below).
      const stop = () => {
        if (stopped) return;
        stopped = true;
        stopRenewing();
      };
      let failures = 0;
      // Renewals that failed in a row after which the lock has expired before the next one could run.
      const maxFailures = Math.max(1, Math.floor((ttlMs - renewMs) / renewMs));
      const loseLock = (why: string) => {
        if (lost.signal.aborted) return;
        stop();
        log.warn(`the certificate-change lock was lost (${why}) while the job ran; stopping before the next step`);
        lost.abort(
          new SetupError(
            'STEP_FAILED',
            `The certificate-change lock of the deployment "${deployment}" was lost while this job ran (${why}), so it stops here: its next step does not start.`,
            { hint: 'A later attempt checks every step again and goes on where this one stopped; nothing to do unless it keeps failing.', retryable: true },
          ),
        );
      };
      const renew = async (): Promise<boolean> => {
        const held = (await redis.eval(renewScript, 1, key, value, String(ttlMs))) === 1;
        failures = 0;
        if (!held) loseLock('it expired or another holder has it');
        return held;
      };
      const stopRenewing = schedule(() => {
        renew().catch((error: unknown) => {
          failures += 1;
          log.warn({ err: (error as Error).message, failures }, 'the certificate-change lock could not be renewed');
          if (failures >= maxFailures) loseLock(`it could not be renewed ${failures} times in a row and expires before the next renewal`);
        });
      }, renewMs);
      log.info('certificate-change lock taken');
      return {
        signal: lost.signal,
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

/**
 * Runs `fn` holding the deployment's change lock (busy: a retryable STEP_FAILED naming
 * the run that holds it; nothing ran), with a signal that also aborts when the lock is lost,
 * released at the end whatever happens. runGuardedChange adds the two-person rule; the runbook's
 * smaller scopes (profile, tenant, configure) take the lock alone, so they never run beside a
 * `run setup` or a rotation of the same deployment.
 */
export async function withChangeLock<T>(
  ctx: JobContext,
  lock: ChangeLock,
  payload: ChangeLockOwner & { deployment: string },
  fn: (guarded: JobContext) => Promise<T>,
): Promise<T> {
  const held = await lock.acquire(payload.deployment, { type: payload.type, runId: payload.runId, attempt: payload.attempt });
  const { signal, dispose } = eitherSignal(ctx.signal, held.signal);
  try {
    return await fn({ ...ctx, signal });
  } finally {
    dispose();
    await held.release();
  }
}

/** A signal that aborts (with its reason) when either one does; `dispose` removes the listeners. */
function eitherSignal(a: AbortSignal, b: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const first = [a, b].find((s) => s.aborted);
  if (first) {
    controller.abort(first.reason);
    return { signal: controller.signal, dispose: () => undefined };
  }
  const onA = () => controller.abort(a.reason);
  const onB = () => controller.abort(b.reason);
  a.addEventListener('abort', onA, { once: true });
  b.addEventListener('abort', onB, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      a.removeEventListener('abort', onA);
      b.removeEventListener('abort', onB);
    },
  };
}
