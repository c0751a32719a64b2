import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startBot, type RunningBot } from '../../bot/bot-server.ts';
import { openProducerRedis } from '../../bot/outbound/producer-redis.ts';
import { REDIS_UNAVAILABLE_MESSAGE } from '../../bot/user-facing-error.ts';
import { silentLogger } from '../../core/logger.ts';
import { APPROVER, OPERATOR, invokeActivity, messageActivity, post, startHarness, type Harness } from '../support/bot-harness.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { startFakeRedisProxy, type FakeRedisProxy } from '../support/fake-redis-proxy.ts';

/**
 * Redis away while a person clicks or types: the bot answers within Teams' ~5 s invoke limit with
 * what to do, instead of hanging until Redis comes back. The bot's producer connection (opened
 * with the bot's own openProducerRedis) reaches Redis through a proxy the test can stall or cut;
 * its workers and the rest of the harness use Redis directly.
 */
let h: Harness | undefined;
let proxy: FakeRedisProxy | undefined;
let bot: RunningBot | undefined;
let botRedis: Redis | undefined;
afterEach(async () => {
  proxy?.restore();
  await bot?.close();
  botRedis?.disconnect();
  await proxy?.close();
  await h?.close();
  h = undefined;
  proxy = undefined;
  bot = undefined;
  botRedis = undefined;
});

async function setUp(): Promise<{ t: Harness; b: RunningBot; p: FakeRedisProxy }> {
  h = await startHarness({ instances: 0 });
  proxy = await startFakeRedisProxy();
  // The workers keep the harness's direct connection; what clicks and commands use goes through the proxy.
  botRedis = await openProducerRedis(new Redis(proxy.url, { lazyConnect: true }));
  bot = await startBot(h.config, { redis: h.redis, producerRedis: botRedis, logger: silentLogger(), now: h.clock.now, sleep: () => Promise.resolve(), host: '127.0.0.1' });
  return { t: h, b: bot, p: proxy };
}

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work;
  return { value, ms: Date.now() - started };
}

describe('Redis away', () => {
  it('a click on a stalled Redis is answered in time with what to do', async () => {
    const { t, b, p } = await setUp();
    const planning = await post(b, messageActivity(t, OPERATOR, 'approve mailboxes pending'));
    expect(planning.status).toBe(200);
    const cardId = t.connector.posts().at(-1)!.activityId;
    const job = await t.agent.waitForJob('plan');
    await t.agent.report(job.runId, 'plan', { kind: 'result', result: { type: 'plan', action: 'approve', matched: 1, toChange: 1, sample: [] } });
    await t.connector.waitFor(() => t.connector.updates(cardId).length === 1, 'the plan card');

    p.stall();
    const { value: res, ms } = await timed(post(b, invokeActivity(t, APPROVER, 'run.approve', { runId: job.runId }, cardId)));
    expect(res.status).toBe(200);
    expect((res.body as { value: unknown }).value).toBe(REDIS_UNAVAILABLE_MESSAGE);
    expect(ms).toBeLessThan(4_500);
    expect(t.agent.jobsOf('approve')).toHaveLength(0);
  });

  it('a command while Redis is down gets a card saying so, at once', async () => {
    const { t, b, p } = await setUp();
    p.cut();
    const before = t.connector.posts().length;
    const { value: res, ms } = await timed(post(b, messageActivity(t, OPERATOR, 'approve mailboxes pending')));
    expect(res.status).toBe(200);
    expect(ms).toBeLessThan(4_500);
    expect(t.connector.posts()).toHaveLength(before + 1);
    expect(cardText(cardOf(t.connector.posts().at(-1)))).toContain(REDIS_UNAVAILABLE_MESSAGE);
  });
});
