import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../core/logger.ts';
import type { RunStore } from './runs/run-store.ts';

/**
 * What the bot's two BullMQ workers (the progress relay and the run timers) share: how a worker is
 * started and logged, and how a card write holds the run's card lock.
 */

/**
 * How long one card write may hold the run's card lock: longer than the poster's worst case
 * (5 attempts of up to 15 s each, waits of up to 30 s between them), so a lock only expires when
 * its holder died. Then the next writer takes it.
 */
export const CARD_LOCK_TTL_MS = 5 * 60_000;
/** A job that finds the run's card being written comes back after this (BullMQ delay; no attempt is used). */
export const CARD_LOCK_RETRY_MS = 500;

export interface BotWorkerOptions {
  queueName: string;
  connection: Redis;
  prefix: string;
  concurrency: number;
  log: Logger;
  /** What one job is, for the log ("report", "timer"). */
  what: string;
}

export function startBotWorker(options: BotWorkerOptions, processor: (job: Job, token: string | undefined) => Promise<void>): Worker {
  const worker = new Worker(options.queueName, processor, {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: options.concurrency,
    autorun: true,
  });
  worker.on('failed', (job, err) => {
    options.log.warn({ jobId: job?.id, err: err.message }, `${options.what} not processed`);
  });
  worker.on('error', (err) => {
    options.log.error({ err: err.message }, `${options.what} worker error`);
  });
  return worker;
}

/**
 * Runs `write` while holding the run's card lock. When another writer holds it, the job goes back
 * to delayed for CARD_LOCK_RETRY_MS (nothing changed yet) and BullMQ's DelayedError ends this try.
 * Returns false when the lock had expired by the time `write` finished (another writer may have
 * written meanwhile), so the caller can put the card right.
 */
export async function withCardLock(
  runs: RunStore,
  runId: string,
  job: Job,
  token: string | undefined,
  log: Logger,
  write: () => Promise<void>,
): Promise<boolean> {
  const lock = await runs.acquireCardLock(runId, CARD_LOCK_TTL_MS);
  if (!lock) {
    log.debug('the run card is being written by someone else: delayed');
    await job.moveToDelayed(Date.now() + CARD_LOCK_RETRY_MS, token);
    throw new DelayedError();
  }
  let held = false;
  try {
    await write();
  } finally {
    held = await runs.releaseCardLock(runId, lock);
  }
  return held;
}
