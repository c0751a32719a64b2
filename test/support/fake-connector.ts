import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the Bot Framework channel (what Teams runs at `serviceUrl`): captures replies
 * (POST /v3/conversations/:id/activities[/:replyToId]) and updates
 * (PUT /v3/conversations/:id/activities/:activityId), answering them like the connector does.
 */
export interface CapturedCall {
  method: 'POST' | 'PUT';
  conversationId: string;
  /** PUT: the activity updated. POST: the id the connector gave the new message. */
  activityId: string;
  /** POST to /activities/:replyToId: the message replied to. */
  replyToId: string | undefined;
  body: { type?: string; text?: string; attachments?: { contentType: string; content: CardLike }[] } & Record<string, unknown>;
}

export interface CardLike {
  type: string;
  version?: string;
  body?: unknown[];
  actions?: { type: string; title: string; verb: string; data: Record<string, unknown> }[];
}

export interface FakeConnector {
  url: string;
  calls: CapturedCall[];
  posts(): CapturedCall[];
  updates(activityId?: string): CapturedCall[];
  /** Answer the next `count` requests with 429 and this Retry-After (seconds). */
  throttleNext(count: number, retryAfterSeconds: string): void;
  /** Answer the next `count` requests (only PUTs or POSTs when `method` is given) with this status (for 5xx / 403 / 404). */
  failNext(count: number, status: number, method?: 'POST' | 'PUT'): void;
  /**
   * Holds the next PUT (a card update) until `release()`: it is recorded and answered only then, so
   * it lands at "Teams" after whatever was posted meanwhile. `arrived` resolves when it comes in.
   */
  holdNextUpdate(): { arrived: Promise<void>; release: () => void };
  throttled: number;
  waitFor(predicate: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeConnector(): Promise<FakeConnector> {
  const calls: CapturedCall[] = [];
  let nextId = 1000;
  let throttle = { count: 0, retryAfter: '1' };
  let failures: { count: number; status: number; method: 'POST' | 'PUT' | undefined } = { count: 0, status: 500, method: undefined };
  let hold: { arrive: () => void; released: Promise<void> } | undefined;
  const state = { throttled: 0 };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const m = /^\/v3\/conversations\/([^/]+)\/activities(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m || (req.method !== 'POST' && req.method !== 'PUT')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"NotFound"}}');
      return;
    }
    if (throttle.count > 0) {
      throttle.count--;
      state.throttled++;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': throttle.retryAfter });
      res.end('{"error":{"code":"Throttled"}}');
      return;
    }
    if (failures.count > 0 && (failures.method === undefined || failures.method === req.method)) {
      failures.count--;
      res.writeHead(failures.status, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"Failure"}}');
      return;
    }
    const conversationId = decodeURIComponent(m[1] ?? '');
    const pathId = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    const body = JSON.parse(raw || '{}') as CapturedCall['body'];
    if (req.method === 'PUT' && hold) {
      const held = hold;
      hold = undefined;
      held.arrive();
      void held.released.then(() => handle(req, res, raw));
      return;
    }
    if (req.method === 'PUT') {
      const activityId = pathId ?? '';
      calls.push({ method: 'PUT', conversationId, activityId, replyToId: undefined, body });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: activityId }));
      return;
    }
    const id = `msg-${nextId++}`;
    calls.push({ method: 'POST', conversationId, activityId: id, replyToId: pathId, body });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id }));
  };

  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      raw += chunk;
    });
    req.on('end', () => handle(req, res, raw));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/`,
    calls,
    posts: () => calls.filter((c) => c.method === 'POST'),
    updates: (activityId?: string) => calls.filter((c) => c.method === 'PUT' && (activityId === undefined || c.activityId === activityId)),
    throttleNext(count, retryAfterSeconds) {
      throttle = { count, retryAfter: retryAfterSeconds };
    },
    failNext(count, status, method) {
      failures = { count, status, method };
    },
    holdNextUpdate() {
      let arrive = (): void => undefined;
      let release = (): void => undefined;
      const arrived = new Promise<void>((resolve) => {
        arrive = resolve;
      });
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      hold = { arrive, released };
      return { arrived, release };
    },
    get throttled() {
      return state.throttled;
    },
    async waitFor(predicate, what, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The Adaptive Card of a captured message (the first attachment). */
export function cardOf(call: CapturedCall | undefined): CardLike {
  const content = call?.body.attachments?.[0]?.content;
  if (!content) throw new Error('the message has no card');
  return content;
}

/** All the text of a card, flattened (for `toContain` checks). */
export function cardText(card: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') parts.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(card);
  return parts.join(' | ');
}
