import type { Redis, RedisOptions } from 'ioredis';

/**
 * The connection for what a person waits on: the run store, adding jobs and scheduling timers in
 * a click or a command. Teams gives an invoke about 5 s, so when Redis is down or stuck these must
 * fail within a couple of seconds (and the person is told, see user-facing-error.ts) instead of
 * waiting for Redis to come back, which is what the workers' connection does
 * (maxRetriesPerRequest: null, as BullMQ workers need).
 */
export const producerRedisOptions = {
  maxRetriesPerRequest: 2,
  enableOfflineQueue: false,
  commandTimeout: 2_000,
  connectTimeout: 2_000,
} as const satisfies RedisOptions;

/** A producer connection with the same address and credentials as `from`, connected and answering. */
export async function openProducerRedis(from: Redis): Promise<Redis> {
  const producer = from.duplicate({ ...producerRedisOptions, lazyConnect: true });
  // ioredis emits 'error' while it reconnects; the bot attaches its logger after start.
  producer.on('error', () => undefined);
  try {
    await producer.connect();
    await producer.ping();
  } catch (error) {
    producer.disconnect();
    throw error;
  }
  return producer;
}
