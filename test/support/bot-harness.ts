import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { expect } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger, silentLogger } from '../../core/logger.ts';
import { loadBotConfig, type BotConfig } from '../../bot/bot-config.ts';
import { startBot, type RunningBot } from '../../bot/bot-server.ts';
import { RunStore } from '../../bot/runs/run-store.ts';
import { BullRunTimers, type RunTimerScheduler } from '../../bot/runs/run-timers.ts';
import { FakeAgent } from './fake-agent.ts';
import { startFakeConnector, type CapturedCall, type FakeConnector } from './fake-connector.ts';
import { deletePrefixedKeys } from './delete-prefixed-keys.ts';

export const SIGNING_KEY = 'test-signing-key-0123456789abcdef-0123456789';
export const OPERATOR = { id: '29:operator', aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'Olivia Operator' };
export const APPROVER = { id: '29:approver', aadObjectId: '22222222-2222-2222-2222-222222222222', name: 'Adam Approver' };
export const STRANGER = { id: '29:stranger', aadObjectId: '33333333-3333-3333-3333-333333333333', name: 'Sam Stranger' };
/** A second approver, for the two-person rule of certificate changes. */
export const SECOND_APPROVER = { id: '29:approver2', aadObjectId: '55555555-5555-5555-5555-555555555555', name: 'Beth Approver' };
/** The bot settings with APPROVER and SECOND_APPROVER as approvers. */
export const twoApproversEnv = { SETUP_APPROVERS: `${APPROVER.aadObjectId},${SECOND_APPROVER.aadObjectId}` };
export const OTHER_OPERATOR = { id: '29:operator2', aadObjectId: '44444444-4444-4444-4444-444444444444', name: 'Oscar Operator' };
export type User = typeof OPERATOR;

/** A clock the test moves by hand. */
export class ManualClock {
  #t: number;
  constructor(start = Date.now()) {
    this.#t = start;
  }
  now = (): number => this.#t;
  advance(ms: number): void {
    this.#t += ms;
  }
}

export interface Harness {
  prefix: string;
  redis: Redis;
  connector: FakeConnector;
  agent: FakeAgent;
  bots: RunningBot[];
  clock: ManualClock;
  sleeps: number[];
  config: Readonly<BotConfig>;
  conversationId: string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  instances?: number;
  env?: Record<string, string>;
  /** Wraps each bot's run timer scheduler (to make scheduling fail in a test). */
  timers?: (real: RunTimerScheduler) => RunTimerScheduler;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const prefix = `t-${randomUUID()}`;
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const connector = await startFakeConnector();
  const clock = new ManualClock();
  const sleeps: number[] = [];
  const config = loadBotConfig({
    PORT: '0',
    REDIS_PREFIX: prefix,
    DEPLOYMENT: 'contoso',
    JOB_SIGNING_KEY: SIGNING_KEY,
    SETUP_OPERATORS: `${OPERATOR.aadObjectId},${OTHER_OPERATOR.aadObjectId}`,
    SETUP_APPROVERS: APPROVER.aadObjectId.toUpperCase(),
    LOG_LEVEL: 'silent',
    ...options.env,
  });
  const agent = new FakeAgent({ connection: redis, prefix, deployment: config.deployment, signingKey: SIGNING_KEY });
  await agent.ready();
  const bots: RunningBot[] = [];
  const schedulers: RunTimerScheduler[] = [];
  for (let i = 0; i < (options.instances ?? 1); i++) {
    let timers: RunTimerScheduler | undefined;
    if (options.timers) {
      const real = new BullRunTimers({ connection: redis, prefix, deployment: config.deployment, now: clock.now });
      schedulers.push(real);
      timers = options.timers(real);
    }
    bots.push(
      await startBot(config, {
        redis,
        // TEST_LOG=debug shows the bot's log while debugging a test.
        logger: process.env['TEST_LOG'] ? createLogger({ name: `bot-${i}`, level: process.env['TEST_LOG'] }) : silentLogger(),
        now: clock.now,
        sleep: (ms) => {
          sleeps.push(ms);
          return Promise.resolve();
        },
        host: '127.0.0.1',
        ...(timers ? { timers } : {}),
      }),
    );
  }
  return {
    prefix,
    redis,
    connector,
    agent,
    bots,
    clock,
    sleeps,
    config,
    conversationId: `19:${randomUUID()}@thread.tacv2;messageid=1700000000000`,
    async close() {
      for (const bot of bots) await bot.close();
      for (const s of schedulers) await s.close();
      await agent.close();
      await connector.close();
      await deletePrefixedKeys(redis, prefix);
      await redis.quit();
    },
  };
}

let activityCounter = 0;

/** Where an activity comes from: the channel (connector) and the conversation. */
export type ActivityTarget = Pick<Harness, 'connector' | 'conversationId'>;

function baseActivity(h: ActivityTarget, from: User) {
  return {
    id: `act-${++activityCounter}-${randomUUID().slice(0, 8)}`,
    timestamp: new Date().toISOString(),
    channelId: 'msteams',
    serviceUrl: h.connector.url,
    from: { id: from.id, name: from.name, aadObjectId: from.aadObjectId },
    conversation: { id: h.conversationId, conversationType: 'channel', isGroup: true, tenantId: 'tenant-1' },
    recipient: { id: '28:setup-bot', name: 'setup' },
    channelData: { tenant: { id: 'tenant-1' } },
  };
}

/** A channel message that @mentions the bot, as Teams sends it. */
export function messageActivity(h: ActivityTarget, from: User, text: string, mention = true): Record<string, unknown> {
  return {
    ...baseActivity(h, from),
    type: 'message',
    text: mention ? `<at>setup</at> ${text}` : text,
    textFormat: 'plain',
    entities: mention ? [{ type: 'mention', text: '<at>setup</at>', mentioned: { id: '28:setup-bot', name: 'setup' } }] : [],
  };
}

/** An Action.Execute invoke from a card button. */
export function invokeActivity(h: ActivityTarget, from: User, verb: string, data: Record<string, unknown>, replyToId: string): Record<string, unknown> {
  return {
    ...baseActivity(h, from),
    type: 'invoke',
    name: 'adaptiveCard/action',
    replyToId,
    value: { action: { type: 'Action.Execute', verb, data } },
  };
}

export async function post(bot: RunningBot, activity: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${bot.url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(activity),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** Sends `text` as `from` to bot instance `bot`; expects exactly one reply and returns it. */
export async function sendMessage(h: Harness, from: User, text: string, bot = 0): Promise<CapturedCall> {
  const before = h.connector.posts().length;
  const res = await post(h.bots[bot]!, messageActivity(h, from, text));
  expect(res.status).toBe(200);
  const posts = h.connector.posts();
  expect(posts.length).toBe(before + 1);
  return posts[posts.length - 1]!;
}

export interface ClickResponse {
  activity: Record<string, unknown>;
  body: { statusCode: number; type: string; value: unknown };
}

/** Clicks a card button (or replays `activity`); expects HTTP 200 and returns the invoke's answer. */
export async function clickCard(h: Harness, from: User, verb: string, runId: string, cardId: string, activity?: Record<string, unknown>): Promise<ClickResponse> {
  const act = activity ?? invokeActivity(h, from, verb, { runId }, cardId);
  const res = await post(h.bots[0]!, act);
  expect(res.status).toBe(200);
  return { activity: act, body: res.body as ClickResponse['body'] };
}

export function runStoreOf(h: Harness): RunStore {
  return new RunStore({ redis: h.redis, prefix: h.prefix });
}

/** Opens a BullMQ queue of the harness's prefix for `use`, and closes it. */
export async function withQueue<T>(h: Harness, name: string, use: (q: Queue) => Promise<T>): Promise<T> {
  const q = new Queue(name, { connection: h.redis, prefix: h.prefix });
  try {
    return await use(q);
  } finally {
    await q.close();
  }
}

/** Waits until a job of `queue` is in `state`. */
export async function waitForJobState(queue: Queue, jobId: string, state: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await queue.getJobState(jobId);
    if (s === state) return;
    if (Date.now() > deadline) throw new Error(`job ${jobId} is ${s}, not ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
