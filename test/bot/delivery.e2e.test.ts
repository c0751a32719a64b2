import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBotConfig } from '../../bot/bot-config.ts';
import { startBot } from '../../bot/bot-server.ts';
import { silentLogger } from '../../core/logger.ts';
import { SetupError } from '../../core/setup-error.ts';
import { reportQueueName } from '../../jobs/deployment.ts';
import { OPERATOR, SIGNING_KEY, messageActivity, post, startHarness, type Harness } from '../support/bot-harness.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('posting to Teams', () => {
  it('retries a card update after the 429 Retry-After (with the injected sleep)', async () => {
    h = await startHarness();
    const t = h;
    const res = await post(t.bots[0]!, messageActivity(t, OPERATOR, 'status'));
    expect(res.status).toBe(200);
    const checking = t.connector.posts().at(-1)!;
    const job = await t.agent.waitForJob('status');
    t.connector.throttleNext(1, '3');
    await t.agent.report(job.runId, 'status', {
      kind: 'result',
      result: { type: 'status', total: 1, approval: { empty: 0, approved: 1, pending: 0, rejected: 0 }, test: { success: 1, failure: 0, notRun: 0 }, crmUser: 'svc' },
    });
    await t.connector.waitFor(() => t.connector.updates(checking.activityId).length === 1, 'the status card after the 429');
    expect(t.connector.throttled).toBe(1);
    expect(t.sleeps).toEqual([3000]);
    expect(cardText(cardOf(t.connector.updates(checking.activityId)[0]))).toContain('Mailboxes: 1');
  });

  it('with two bot instances on the same Redis, posts each report once', async () => {
    h = await startHarness({ instances: 2 });
    const t = h;
    const reports = new Queue(reportQueueName('contoso'), { connection: t.redis, prefix: t.prefix });
    const workers = await reports.getWorkers();
    expect(workers.length).toBeGreaterThanOrEqual(2);
    await reports.close();

    const runs = 8;
    for (let i = 0; i < runs; i++) {
      const res = await post(t.bots[i % 2]!, messageActivity(t, OPERATOR, 'status'));
      expect(res.status).toBe(200);
    }
    const cards = t.connector.posts().map((p) => p.activityId);
    expect(cards).toHaveLength(runs);
    await t.connector.waitFor(() => t.agent.jobsOf('status').length === runs, 'all status jobs');
    for (const job of t.agent.jobsOf('status')) {
      await t.agent.report(job.runId, 'status', {
        kind: 'result',
        result: { type: 'status', total: 2, approval: { empty: 0, approved: 2, pending: 0, rejected: 0 }, test: { success: 2, failure: 0, notRun: 0 }, crmUser: 'svc' },
      });
    }
    await t.connector.waitFor(() => t.connector.updates().length >= runs, 'all status cards');
    // Let any duplicate delivery surface before counting: wait until every report job is completed.
    const q = new Queue(reportQueueName('contoso'), { connection: t.redis, prefix: t.prefix });
    for (;;) {
      const c = await q.getJobCounts('waiting', 'active', 'delayed', 'completed');
      if (c['completed'] === runs) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await q.close();
    for (const id of cards) expect(t.connector.updates(id)).toHaveLength(1);
    expect(t.connector.updates()).toHaveLength(runs);
  });
});

describe('start-up', () => {
  it('refuses to start unauthenticated in production', async () => {
    const config = loadBotConfig({ NODE_ENV: 'production', JOB_SIGNING_KEY: SIGNING_KEY, PORT: '0' });
    const started = startBot(config, { logger: silentLogger() });
    await expect(started).rejects.toBeInstanceOf(SetupError);
    await expect(started).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('MicrosoftAppId') as unknown });
  });

  it('without authentication listens on 127.0.0.1 only, unless HOST is set', async () => {
    h = await startHarness({ instances: 0 });
    const local = await startBot(h.config, { redis: h.redis, logger: silentLogger() });
    try {
      expect(h.config.host).toBe('127.0.0.1');
      expect(local.host).toBe('127.0.0.1');
      expect((await fetch(`${local.url}/healthz`)).status).toBe(200);
    } finally {
      await local.close();
    }
    const everywhere = await startBot({ ...h.config, host: '0.0.0.0', hostExplicit: true }, { redis: h.redis, logger: silentLogger() });
    try {
      expect(everywhere.host).toBe('0.0.0.0');
    } finally {
      await everywhere.close();
    }
  });

  it('serves /healthz with Redis reachability and the version', async () => {
    h = await startHarness();
    const res = await fetch(`${h.bots[0]!.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, redis: true, version: '0.1.0', authentication: 'off' });
  });
});
