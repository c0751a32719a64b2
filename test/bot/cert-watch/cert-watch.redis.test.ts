import { createAuditLog } from '../../../core/audit-log.ts';
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { CloudAdapter, TurnContext } from 'botbuilder';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../core/logger.ts';
import { certStatusResultSchema, type CertStatusResult, type CertSummary } from '../../../jobs/cert-types.ts';
import { jobQueueName, timerQueueName } from '../../../jobs/deployment.ts';
import { EnvelopeSigner } from '../../../jobs/envelope-signer.ts';
import { verifyJob } from '../../../jobs/job-options.ts';
import { Authorizer } from '../../../bot/inbound/authorizer.ts';
import { loadBotConfig, type BotConfig } from '../../../bot/bot-config.ts';
import type { ActivityRequest, BotServices } from '../../../bot/bot-services.ts';
import { cardBytes, MAX_CARD_BYTES } from '../../../bot/cards/common/card-kit.ts';
import { certExpiredCard, certNotRegisteredCard, certWatchSetCard, describeSchedule, rotationDueCard, startRotationVerb } from '../../../bot/cards/cert/cert-watch-card.ts';
import {
  certWatchAlert,
  certWatchConversationKey,
  CERT_WATCH_REQUESTED_BY,
  ensureCertWatchScheduler,
  handleCertWatchResult,
  handleStartRotationClick,
  readCertWatchConversation,
  runCertWatch,
  storeCertWatchConversation,
} from '../../../bot/cert-watch/cert-watch.ts';
import { handleCertWatchCommand } from '../../../bot/inbound/commands/cert-watch-command.ts';
import { ConnectorHttpError } from '../../../bot/connector-http-client.ts';
import { BullJobDispatcher } from '../../../bot/outbound/job-dispatcher.ts';
import { RunStore } from '../../../bot/runs/run-store.ts';
import type { ConversationRef, Run } from '../../../bot/runs/run-model.ts';
import { BullRunTimers, timerJobId } from '../../../bot/runs/run-timers.ts';
import { TeamsPoster } from '../../../bot/teams-poster.ts';
import { deletePrefixedKeys } from '../../support/delete-prefixed-keys.ts';

const SIGNING_KEY = 'test-signing-key-0123456789abcdef-0123456789';
const OPERATOR = { aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'Olivia Operator' };
const STRANGER = { aadObjectId: '33333333-3333-3333-3333-333333333333', name: 'Sam Stranger' };
const DAY = 86_400_000;
const THUMB_A = 'A'.repeat(40);
const THUMB_B = 'B'.repeat(40);

const conversation: ConversationRef = {
  channelId: 'msteams',
  serviceUrl: 'http://127.0.0.1:1/',
  conversation: { id: '19:watch@thread.tacv2', conversationType: 'channel', tenantId: 'tenant-1' },
  bot: { id: '28:setup-bot', name: 'setup' },
};

/** An adapter that records every proactive send; `failNext` makes the next sends fail with that status. */
function recordingAdapter() {
  const sent: { ref: unknown; card: unknown }[] = [];
  const failNext: number[] = [];
  let n = 0;
  const adapter = {
    continueConversationAsync: async (_appId: string, ref: unknown, logic: (ctx: TurnContext) => Promise<void>) => {
      const ctx = {
        sendActivity: (activity: { attachments?: { content?: unknown }[] }) => {
          const status = failNext.shift();
          if (status !== undefined) return Promise.reject(new ConnectorHttpError('POST', 'http://x/', status, {}));
          sent.push({ ref, card: activity.attachments?.[0]?.content });
          return Promise.resolve({ id: `m${++n}` });
        },
      } as unknown as TurnContext;
      await logic(ctx);
    },
  } as unknown as CloudAdapter;
  return { adapter, sent, failNext };
}

interface Env {
  prefix: string;
  services: BotServices;
  sent: { ref: unknown; card: unknown }[];
  failNext: number[];
  clock: { t: number };
  close(): Promise<void>;
}

let redis: Redis;

beforeAll(() => {
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await redis.quit();
});

function makeEnv(env: Record<string, string> = {}): Env {
  const prefix = `t-${randomUUID()}`;
  const config: Readonly<BotConfig> = loadBotConfig({
    REDIS_PREFIX: prefix,
    DEPLOYMENT: 'contoso',
    JOB_SIGNING_KEY: SIGNING_KEY,
    SETUP_OPERATORS: OPERATOR.aadObjectId,
    LOG_LEVEL: 'silent',
    ...env,
  });
  const clock = { t: Date.parse('2026-03-01T07:00:00.000Z') };
  const now = (): number => clock.t;
  const { adapter, sent, failNext } = recordingAdapter();
  const poster = new TeamsPoster({ adapter, appId: '', logger: silentLogger(), now, sleep: () => Promise.resolve(), policy: { maxAttempts: 1, maxDelayMs: 0, baseDelayMs: 0 } });
  const jobs = new BullJobDispatcher({ connection: redis, prefix, deployment: config.deployment, signer: new EnvelopeSigner({ key: SIGNING_KEY }) });
  const timers = new BullRunTimers({ connection: redis, prefix, deployment: config.deployment, now });
  const services: BotServices = {
    config,
    authorizer: new Authorizer({ operators: config.operators, approvers: config.approvers }),
    runs: new RunStore({ redis, prefix, now }),
    jobs,
    timers,
    poster,
    audit: createAuditLog({ redis, prefix, now }),
    redis,
    now,
    logger: silentLogger(),
  };
  return {
    prefix,
    services,
    sent,
    failNext,
    clock,
    async close() {
      await jobs.close();
      await timers.close();
      await deletePrefixedKeys(redis, prefix);
    },
  };
}

function cert(thumbprint: string, notAfter: string): CertSummary {
  return {
    thumbprint,
    subject: 'CN=crm-s2s.contoso.com',
    issuer: 'CN=Contoso Issuing CA',
    serialNumber: '0A1B2C',
    notBefore: '2025-01-01T00:00:00.000Z',
    notAfter,
    keyAlgorithm: 'RSA',
    keySize: 2048,
    signatureHash: 'SHA256',
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extendedKeyUsage: [],
    selfSigned: false,
    hasPrivateKey: false,
    keySpec: null,
    problems: [],
  };
}

/** A cert-status result for a registered certificate `thumbprint` with `daysLeft` days left (null: none registered). */
function statusResult(env: Env, thumbprint: string | null, daysLeft: number | null): CertStatusResult {
  const notAfter = new Date(env.clock.t + (daysLeft ?? 0) * DAY + 3600_000).toISOString();
  return certStatusResultSchema.parse({
    type: 'cert-status',
    registrationRead: true,
    registered: thumbprint ? cert(thumbprint, notAfter) : null,
    servers: [],
    entra: null,
    serverSettings: { principalId: null, metadataUrl: null },
    agree: thumbprint !== null,
    daysLeft: thumbprint ? daysLeft : null,
    findings: [],
  });
}

async function watchRun(env: Env): Promise<Run> {
  return env.services.runs.create({ runId: `w${randomUUID().replace(/-/g, '').slice(0, 12)}`, deployment: 'contoso', kind: 'cert-watch', state: 'running', requester: { aadObjectId: '', name: 'certificate watch' }, conversation });
}

/** One watch check with this result; returns the cards posted by it. */
async function check(env: Env, thumbprint: string | null, daysLeft: number | null): Promise<string[]> {
  const before = env.sent.length;
  await handleCertWatchResult(env.services, await watchRun(env), statusResult(env, thumbprint, daysLeft), silentLogger());
  return env.sent.slice(before).map((s) => JSON.stringify(s.card));
}

describe('certWatchAlert (pure)', () => {
  const thresholds = [30, 14, 7, 1];
  const at = Date.parse('2026-03-01T00:00:00.000Z');
  const r = (daysLeft: number | null, registered = true): CertStatusResult => ({ type: 'cert-status', registrationRead: true, servers: [], entra: null, serverSettings: { principalId: null, metadataUrl: null }, agree: true, findings: [], registered: registered ? cert(THUMB_A, '2026-04-01T00:00:00.000Z') : null, daysLeft });

  it('announces the lowest threshold crossed and lists every crossed one', () => {
    expect(certWatchAlert(r(40), thresholds, at)).toEqual({ kind: 'none' });
    expect(certWatchAlert(r(30), thresholds, at)).toEqual({ kind: 'due', daysLeft: 30, announce: 30, crossed: [30] });
    expect(certWatchAlert(r(5), thresholds, at)).toEqual({ kind: 'due', daysLeft: 5, announce: 7, crossed: [30, 14, 7] });
    expect(certWatchAlert(r(0), thresholds, at)).toEqual({ kind: 'due', daysLeft: 0, announce: 1, crossed: [30, 14, 7, 1] });
    expect(certWatchAlert(r(-1), thresholds, at)).toEqual({ kind: 'expired', daysLeft: -1 });
    expect(certWatchAlert(r(null, false), thresholds, at)).toEqual({ kind: 'not-registered' });
  });

  it('counts the days from notAfter when the agent gave none', () => {
    // notAfter 2026-04-01, now 2026-03-01: 31 days.
    expect(certWatchAlert(r(null), thresholds, at)).toEqual({ kind: 'none' });
    expect(certWatchAlert(r(null), thresholds, at + 2 * DAY)).toEqual({ kind: 'due', daysLeft: 29, announce: 30, crossed: [30] });
  });
});

describe('handleCertWatchResult (real Redis)', () => {
  let env: Env;
  beforeEach(() => {
    env = makeEnv();
  });
  afterEach(async () => {
    await env.close();
  });

  it('posts once per threshold: 40 nothing, 30 once, 30 again nothing, 29 nothing, 13 posts the 14-day card', async () => {
    expect(await check(env, THUMB_A, 40)).toEqual([]);
    const at30 = await check(env, THUMB_A, 30);
    expect(at30).toHaveLength(1);
    expect(at30[0]).toContain('expires in 30 days');
    expect(at30[0]).toContain('30-day warning');
    expect(at30[0]).toContain(THUMB_A);
    expect(at30[0]).toContain('cert.start-rotation');
    expect(await check(env, THUMB_A, 30)).toEqual([]);
    env.clock.t += DAY;
    expect(await check(env, THUMB_A, 29)).toEqual([]);
    env.clock.t += 16 * DAY;
    const at13 = await check(env, THUMB_A, 13);
    expect(at13).toHaveLength(1);
    expect(at13[0]).toContain('14-day warning');
    // Posted where the watch conversation is (the run's reference when none is stored).
    expect(env.sent[0]?.ref).toMatchObject({ conversation: { id: conversation.conversation.id } });
  });

  it('a first check at 5 days posts once (for 7), then 3 nothing, then 1 posts again', async () => {
    const at5 = await check(env, THUMB_A, 5);
    expect(at5).toHaveLength(1);
    expect(at5[0]).toContain('7-day warning');
    // 30 and 14 are marked too: they are never announced for this certificate.
    for (const t of [30, 14, 7]) expect(await redis.exists(`${env.prefix}:cert-watch:contoso:${THUMB_A}:${t}`)).toBe(1);
    expect(await redis.ttl(`${env.prefix}:cert-watch:contoso:${THUMB_A}:30`)).toBeGreaterThan(399 * 24 * 3600);
    expect(await check(env, THUMB_A, 14)).toEqual([]);
    expect(await check(env, THUMB_A, 3)).toEqual([]);
    const at1 = await check(env, THUMB_A, 1);
    expect(at1).toHaveLength(1);
    expect(at1[0]).toContain('1-day warning');
    expect(at1[0]).toContain('expires in 1 day');
  });

  it('a new certificate (new thumbprint) starts over', async () => {
    expect(await check(env, THUMB_A, 13)).toHaveLength(1);
    expect(await check(env, THUMB_A, 13)).toEqual([]);
    const fresh = await check(env, THUMB_B, 13);
    expect(fresh).toHaveLength(1);
    expect(fresh[0]).toContain(THUMB_B);
  });

  it('an expired certificate posts the expired card once per day', async () => {
    const first = await check(env, THUMB_A, -2);
    expect(first).toHaveLength(1);
    expect(first[0]).toContain('EXPIRED 2 days ago');
    expect(first[0]).toContain('server-side sync stops authenticating to Exchange Online for every mailbox');
    expect(await check(env, THUMB_A, -2)).toEqual([]);
    env.clock.t += DAY;
    const next = await check(env, THUMB_A, -3);
    expect(next).toHaveLength(1);
    expect(next[0]).toContain('EXPIRED 3 days ago');
  });

  it('no registered certificate posts the not-registered card once per day', async () => {
    const first = await check(env, null, null);
    expect(first).toHaveLength(1);
    expect(first[0]).toContain('No S2S certificate is registered');
    expect(await check(env, null, null)).toEqual([]);
    env.clock.t += DAY;
    expect(await check(env, null, null)).toHaveLength(1);
  });

  it('posts to the stored watch conversation', async () => {
    const stored: ConversationRef = { ...conversation, conversation: { id: '19:elsewhere@thread.tacv2' } };
    await storeCertWatchConversation(env.services, stored);
    expect(await check(env, THUMB_A, 7)).toHaveLength(1);
    expect(env.sent[0]?.ref).toMatchObject({ conversation: { id: '19:elsewhere@thread.tacv2' } });
  });

  it('a card Teams did not take is posted by the next check', async () => {
    env.failNext.push(403);
    expect(await check(env, THUMB_A, 7)).toEqual([]);
    const retried = await check(env, THUMB_A, 7);
    expect(retried).toHaveLength(1);
    expect(retried[0]).toContain('7-day warning');
    expect(await check(env, THUMB_A, 7)).toEqual([]);
  });

  it('honours configured thresholds', async () => {
    const custom = makeEnv({ CERT_WATCH_THRESHOLDS: '60,3' });
    try {
      expect(custom.services.config.certWatchThresholds).toEqual([60, 3]);
      expect(await check(custom, THUMB_A, 30)).toHaveLength(1);
      expect(await check(custom, THUMB_A, 7)).toEqual([]);
      expect(await check(custom, THUMB_A, 3)).toHaveLength(1);
    } finally {
      await custom.close();
    }
  });
});

describe('the watch conversation', () => {
  let env: Env;
  beforeEach(() => {
    env = makeEnv();
  });
  afterEach(async () => {
    await env.close();
  });

  it('is zod-checked on write and on read', async () => {
    await expect(storeCertWatchConversation(env.services, { ...conversation, serviceUrl: 'not a url' })).rejects.toThrow();
    expect(await redis.exists(certWatchConversationKey(env.prefix, 'contoso'))).toBe(0);
    await redis.set(certWatchConversationKey(env.prefix, 'contoso'), JSON.stringify({ channelId: 'msteams' }));
    expect(await readCertWatchConversation(env.services, silentLogger())).toBeUndefined();
    await storeCertWatchConversation(env.services, conversation);
    expect(await readCertWatchConversation(env.services, silentLogger())).toMatchObject(conversation);
  });
});

describe('runCertWatch (real Redis, real queues)', () => {
  let env: Env;
  beforeEach(() => {
    env = makeEnv();
  });
  afterEach(async () => {
    await env.close();
  });

  it('does nothing without a stored conversation', async () => {
    await runCertWatch(env.services, silentLogger());
    const q = new Queue(jobQueueName('contoso'), { connection: redis, prefix: env.prefix });
    try {
      expect(await q.getJobCounts('waiting', 'delayed', 'active')).toMatchObject({ waiting: 0, delayed: 0, active: 0 });
      expect(await redis.keys(`${env.prefix}:run:*`)).toEqual([]);
    } finally {
      await q.close();
    }
  });

  it('creates a running cert-watch run, its plan-timeout timer and a signed cert-status job', async () => {
    await storeCertWatchConversation(env.services, conversation);
    await runCertWatch(env.services, silentLogger());
    const jobsQ = new Queue(jobQueueName('contoso'), { connection: redis, prefix: env.prefix });
    const timersQ = new Queue(timerQueueName('contoso'), { connection: redis, prefix: env.prefix });
    try {
      const waiting = await jobsQ.getJobs(['waiting']);
      expect(waiting).toHaveLength(1);
      const payload = verifyJob(new EnvelopeSigner({ key: SIGNING_KEY }), waiting[0]?.data);
      expect(payload).toMatchObject({ type: 'cert-status', deployment: 'contoso', requestedBy: CERT_WATCH_REQUESTED_BY });
      const run = await env.services.runs.get(payload.runId);
      expect(run).toMatchObject({ kind: 'cert-watch', state: 'running', requester: { aadObjectId: '', name: 'certificate watch' }, conversation: { conversation: { id: conversation.conversation.id } } });
      expect(run?.cardActivityId).toBeUndefined();
      expect(await timersQ.getJobState(timerJobId(payload.runId, 'plan-timeout'))).toBe('delayed');
    } finally {
      await jobsQ.close();
      await timersQ.close();
    }
  });
});

describe('ensureCertWatchScheduler', () => {
  it('upserting twice (two bot instances, a restart) leaves one scheduler with the configured pattern', async () => {
    const prefix = `t-${randomUUID()}`;
    const queue = new Queue(timerQueueName('contoso'), { connection: redis, prefix });
    try {
      await ensureCertWatchScheduler({ queue, cron: '0 7 * * *', log: silentLogger() });
      await ensureCertWatchScheduler({ queue, cron: '30 6 * * 1-5', log: silentLogger() });
      const schedulers = await queue.getJobSchedulers();
      expect(schedulers).toHaveLength(1);
      expect(schedulers[0]).toMatchObject({ key: 'cert-watch', name: 'cert-watch', pattern: '30 6 * * 1-5', tz: 'UTC' });
      // Its next job is waiting as a delayed job of the timer queue.
      const delayed = await queue.getJobs(['delayed']);
      expect(delayed.map((j) => j.name)).toEqual(['cert-watch']);
    } finally {
      await queue.close();
      await deletePrefixedKeys(redis, prefix);
    }
  });
});

/** A TurnContext stand-in for a command: the activity, and replies recorded. */
function commandRequest(env: Env, from: { aadObjectId: string; name: string }): { req: ActivityRequest; replies: unknown[] } {
  const replies: unknown[] = [];
  const activity = {
    id: 'act-1',
    type: 'message',
    channelId: 'msteams',
    serviceUrl: 'http://127.0.0.1:1/',
    from: { id: '29:x', ...from },
    conversation: { id: '19:cmd@thread.tacv2', conversationType: 'channel', tenantId: 'tenant-1' },
    recipient: { id: '28:setup-bot', name: 'setup' },
    text: 'cert watch here',
  };
  const ctx = {
    activity,
    sendActivity: (a: { attachments?: { content?: unknown }[] }) => {
      replies.push(a.attachments?.[0]?.content);
      return Promise.resolve({ id: `r${replies.length}` });
    },
  } as unknown as TurnContext;
  return { req: { ctx, from, log: silentLogger(), services: env.services }, replies };
}

describe('cert watch here', () => {
  let env: Env;
  beforeEach(() => {
    env = makeEnv();
  });
  afterEach(async () => {
    await env.close();
  });

  it('refuses a non-operator and stores nothing', async () => {
    const { req, replies } = commandRequest(env, STRANGER);
    await handleCertWatchCommand(req);
    expect(replies).toHaveLength(1);
    expect(JSON.stringify(replies[0])).toContain('Not allowed');
    expect(await redis.exists(certWatchConversationKey(env.prefix, 'contoso'))).toBe(0);
    const q = new Queue(jobQueueName('contoso'), { connection: redis, prefix: env.prefix });
    try {
      expect(await q.getJobCounts('waiting')).toMatchObject({ waiting: 0 });
      expect(await redis.keys(`${env.prefix}:run:*`)).toEqual([]);
    } finally {
      await q.close();
    }
  });

  it('stores this conversation for an operator, confirms, and runs a check at once', async () => {
    const { req, replies } = commandRequest(env, OPERATOR);
    await handleCertWatchCommand(req);
    expect(await readCertWatchConversation(env.services, silentLogger())).toMatchObject({ conversation: { id: '19:cmd@thread.tacv2' }, channelId: 'msteams' });
    expect(replies).toHaveLength(1);
    const confirmation = JSON.stringify(replies[0]);
    expect(confirmation).toContain('30, 14, 7, 1 days');
    expect(confirmation).toContain('every day at 07:00 UTC');
    expect(confirmation).toContain('A check runs now.');
    const q = new Queue(jobQueueName('contoso'), { connection: redis, prefix: env.prefix });
    try {
      const waiting = await q.getJobs(['waiting']);
      expect(waiting.map((j) => j.name)).toEqual(['cert-status']);
    } finally {
      await q.close();
    }
  });
});

describe('Start rotation click', () => {
  let env: Env;
  beforeEach(() => {
    env = makeEnv();
  });
  afterEach(async () => {
    await env.close();
  });

  it('refuses a non-operator and a card without a run id', async () => {
    const stranger = commandRequest(env, STRANGER);
    expect(await handleStartRotationClick(stranger.req, { runId: 'abcdefgh12' })).toMatch(/Only the operators/);
    expect(stranger.replies).toEqual([]);
    const operator = commandRequest(env, OPERATOR);
    expect(await handleStartRotationClick(operator.req, { runId: '../x' })).toMatch(/not valid/);
    expect(operator.replies).toEqual([]);
  });

  it('an operator\'s click starts a rotation plan as if they typed cert rotate', async () => {
    const { req, replies } = commandRequest(env, OPERATOR);
    expect(await handleStartRotationClick(req, { runId: 'abcdefgh12' })).toMatch(/Rotation requested/);
    expect(replies).toHaveLength(1);
    const q = new Queue(jobQueueName('contoso'), { connection: redis, prefix: env.prefix });
    try {
      const waiting = await q.getJobs(['waiting']);
      expect(waiting.map((j) => j.name)).toEqual(['cert-plan']);
      const payload = verifyJob(new EnvelopeSigner({ key: SIGNING_KEY }), waiting[0]?.data);
      expect(payload).toMatchObject({ type: 'cert-plan', requestedBy: OPERATOR.aadObjectId });
      expect(await env.services.runs.get(payload.runId)).toMatchObject({ kind: 'cert-rotate', requester: OPERATOR });
    } finally {
      await q.close();
    }
  });
});

describe('cert watch cards', () => {
  it('carry only the watch run id on Start rotation and stay under the Teams size limit', () => {
    const longCert = { ...cert(THUMB_A, '2026-04-01T00:00:00.000Z'), subject: `CN=${'x'.repeat(390)}` };
    const cards = [
      rotationDueCard({ deployment: 'contoso', runId: 'abcdefgh12', cert: longCert, daysLeft: 7, threshold: 7 }),
      certExpiredCard({ deployment: 'contoso', runId: 'abcdefgh12', cert: longCert, daysLeft: -1 }),
      certNotRegisteredCard({ deployment: 'contoso', runId: 'abcdefgh12' }),
    ];
    for (const c of cards) {
      expect(c.actions).toEqual([{ type: 'Action.Execute', title: 'Start rotation', verb: startRotationVerb, data: { runId: 'abcdefgh12' }, style: 'positive' }]);
      expect(cardBytes(c)).toBeLessThan(MAX_CARD_BYTES);
      expect(JSON.stringify(c)).toContain('CERT_DIR');
    }
    expect(JSON.stringify(cards[1])).toContain('EXPIRED 1 day ago');
    expect(certWatchSetCard({ deployment: 'contoso', thresholds: [30, 14, 7, 1], cron: '0 7 * * *' }).actions).toBeUndefined();
  });
});

describe('describeSchedule', () => {
  it('says the usual patterns in words', () => {
    expect(describeSchedule('0 7 * * *')).toBe('every day at 07:00 UTC');
    expect(describeSchedule('30 6 * * 1-5')).toBe('every weekday (Monday to Friday) at 06:30 UTC');
    expect(describeSchedule('0 8 * * 1')).toBe('every Monday at 08:00 UTC');
    expect(describeSchedule('*/15 * * * *')).toContain('`*/15 * * * *`');
  });
});
