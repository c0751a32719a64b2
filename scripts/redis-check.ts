import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Redis } from 'ioredis';

/** Does a Redis answer PING at this URL within the timeout? Never throws, never retries. */
export async function pingRedis(url: string, timeoutMs = 1500): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const ping = (async () => {
      await redis.connect();
      return (await redis.ping()) === 'PONG';
    })();
    ping.catch(() => undefined);
    return await Promise.race([ping, timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/** The full path of an executable found on PATH, or undefined. */
export function findOnPath(name: string, pathVariable = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathVariable.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A redis:// URL we may start a server for: plain, on this machine, no password, no TLS. */
export function localRedisPort(url: string): number | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'redis:') return undefined;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(u.hostname)) return undefined;
  if (u.password) return undefined;
  return u.port ? Number(u.port) : 6379;
}

/** What to tell a person when no Redis answers and none can be started. */
export function redisHowTo(url: string): string {
  return [
    `No Redis answers at ${url}. The demo needs one (the bot and the agent talk through it). Either:`,
    '  - docker compose up -d redis            (from this folder; Redis 7 with persistence on 127.0.0.1:6379)',
    '  - sudo apt-get install redis-server      (Debian/Ubuntu; or brew install redis on macOS), then npm start again',
    '  - REDIS_URL=redis://host:port npm start  (point it at a Redis you already have)',
  ].join('\n');
}

export interface LocalRedis {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts an ephemeral redis-server (nothing saved to disk) on 127.0.0.1:<port> and waits until it
 * answers. stop() ends it and waits for its exit.
 */
export async function startLocalRedis(port: number, options: { executable?: string; timeoutMs?: number } = {}): Promise<LocalRedis> {
  const executable = options.executable ?? findOnPath('redis-server') ?? 'redis-server';
  const child = spawn(executable, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await pingRedis(url, 500)) return { port, child, stop };
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  await stop();
  throw new Error(`redis-server did not start on port ${port}${stderr ? `: ${stderr.trim()}` : ''}`);
}

/** Deletes every key under `<prefix>:` (the demo's leftovers from an earlier run). Returns the count. */
export async function clearPrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}
