import { Redis, type RedisOptions } from 'ioredis';
import { SetupError } from './setup-error.ts';

/** How to get a Redis when none answers: said the same way by every process. */
export const redisHelp =
  'Start one with `docker compose up -d redis` (from the project folder), or install and start a local one ' +
  '(`sudo apt-get install redis-server`, then `redis-server`), or point REDIS_URL at yours.';

/**
 * Opens a connection suitable for BullMQ (maxRetriesPerRequest must be null for workers) and
 * checks it answers, so a process fails fast at start with a clear message instead of hanging.
 */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    lazyConnect: true,
    ...options,
  });
  // ioredis emits 'error' while it reconnects; the caller's logger is attached after start.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (cause) {
    redis.disconnect();
    throw new SetupError('REDIS_UNREACHABLE', `Cannot reach Redis at ${redactUrl(url)}.`, {
      hint: redisHelp,
      cause,
    });
  }
  return redis;
}

/** Hides a password in a redis:// URL before it is shown or logged. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
