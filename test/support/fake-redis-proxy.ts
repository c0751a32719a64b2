import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy in front of the test Redis, so a test can take Redis away from one bot without
 * touching the Redis other tests use: `stall()` keeps connections open but stops answering (a hung
 * or partitioned Redis), `cut()` drops them and refuses new ones (Redis down), `restore()` ends
 * either (dropping what is open, so clients reconnect cleanly).
 */
export interface FakeRedisProxy {
  url: string;
  stall(): void;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startFakeRedisProxy(target = { host: '127.0.0.1', port: 6379 }): Promise<FakeRedisProxy> {
  let mode: 'open' | 'stalled' | 'cut' = 'open';
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  const dropAll = (): void => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  const server: Server = createServer((client) => {
    track(client);
    if (mode === 'cut') {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    track(upstream);
    client.on('data', (chunk: Buffer) => {
      if (mode === 'open') upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (mode === 'open') client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    stall() {
      mode = 'stalled';
    },
    cut() {
      mode = 'cut';
      dropAll();
    },
    restore() {
      mode = 'open';
      dropAll();
    },
    async close() {
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
