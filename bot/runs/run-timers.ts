import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { timerQueueName } from '../../jobs/deployment.ts';
import { jobTtlMs } from '../../jobs/job-options.ts';
import { runIdSchema, type JobType } from '../../jobs/job-types.ts';

/**
 * Run timers: what moves a run on when nobody clicks and no agent reports. Each is a delayed job on
 * the bot's own queue `setup-timers-<deployment>` with a deterministic id `<runId>-<timer>`, so
 * scheduling the same timer twice (a redelivered report, two bot instances) is a no-op, and the
 * timers survive a bot restart (they are in Redis). A TimerWorker in every bot instance fires them;
 * BullMQ gives each to one instance, so each card is updated once.
 *
 * - `plan-timeout`: the plan / status job's signature expired and no agent answered
 * - `approval-expiry`: the plan card's approval window ended without a decision
 * - `start-timeout`: the approved job's signature expired and no agent started it (one per attempt
 *   of a resumed rotation or retried runbook run: `<runId>-start-timeout-a<n>`, or BullMQ would keep
 *   the first attempt's)
 */
export const timerKinds = ['plan-timeout', 'approval-expiry', 'start-timeout'] as const;
export type TimerKind = (typeof timerKinds)[number];

export const timerDataSchema = z.object({
  runId: runIdSchema,
  timer: z.enum(timerKinds),
  dueAt: z.number().int().nonnegative(),
  /** The run's attempt the timer guards (a resumed rotation); absent: 1. */
  attempt: z.number().int().min(1).max(50).optional(),
}).strict();
export type TimerData = z.infer<typeof timerDataSchema>;

/**
 * How long after a job's signature expires its timer fires. An agent checks the expiry when it takes
 * the job and reports at once (started, or the plan a few seconds later); the grace lets that report
 * arrive before the timer gives up on the run. After it, no agent can take the job any more.
 */
export const TIMER_GRACE_MS = 2 * 60_000;

/** When the timer for a job of `type` signed at `signedAt` fires. */
export function jobTimeoutAt(type: JobType, signedAt: number): number {
  return signedAt + jobTtlMs[type] + TIMER_GRACE_MS;
}

export function timerJobId(runId: string, timer: TimerKind, attempt = 1): string {
  return attempt > 1 ? `${runId}-${timer}-a${attempt}` : `${runId}-${timer}`;
}

export interface RunTimerScheduler {
  /** Schedules `timer` for the run (and attempt) at `dueAt` (epoch ms, by the bot's clock); a second call is a no-op. */
  schedule(runId: string, timer: TimerKind, dueAt: number, attempt?: number): Promise<void>;
  close(): Promise<void>;
}

export interface BullRunTimersOptions {
  connection: Redis;
  prefix: string;
  deployment: string;
  now: () => number;
}

export class BullRunTimers implements RunTimerScheduler {
  readonly #queue: Queue;
  readonly #now: () => number;

  constructor(options: BullRunTimersOptions) {
    this.#queue = new Queue(timerQueueName(options.deployment), { connection: options.connection, prefix: options.prefix });
    this.#now = options.now;
  }

  async schedule(runId: string, timer: TimerKind, dueAt: number, attempt = 1): Promise<void> {
    const data: TimerData = timerDataSchema.parse({ runId, timer, dueAt: Math.round(dueAt), ...(attempt > 1 ? { attempt } : {}) });
    await this.#queue.add(timer, data, timerAddOptions(runId, timer, Math.max(0, data.dueAt - this.#now()), attempt));
  }

  async close(): Promise<void> {
    await this.#queue.close();
  }
}

export function timerAddOptions(runId: string, timer: TimerKind, delayMs: number, attempt = 1): JobsOptions {
  return {
    jobId: timerJobId(runId, timer, attempt),
    delay: delayMs,
    // Retries are for Redis or Teams hiccups; each attempt re-checks the run state first.
    attempts: 5,
    backoff: { type: 'exponential', delay: 5_000 },
    // Kept a day after firing (so a duplicate schedule is still a no-op), then removed.
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

/**
 * Schedules a timer, before the state change or the job it guards: the timer acts only by a
 * compare-and-set on the state it expects, so one scheduled early is harmless, while a run moved on
 * without its timer could wait forever. A failure is logged and thrown, so the caller changes nothing.
 */
export async function scheduleTimer(
  timers: RunTimerScheduler,
  log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void },
  runId: string,
  timer: TimerKind,
  dueAt: number,
  attempt = 1,
): Promise<void> {
  try {
    if (attempt > 1) await timers.schedule(runId, timer, dueAt, attempt);
    else await timers.schedule(runId, timer, dueAt);
  } catch (error) {
    log.error({ err: error, timer }, 'could not schedule the run timer: nothing was changed');
    throw error;
  }
  log.info({ timer, dueAt: new Date(dueAt).toISOString(), ...(attempt > 1 ? { attempt } : {}) }, 'timer scheduled');
}
