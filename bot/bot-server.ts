import { createAuditLog } from '../core/audit-log.ts';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ActivityTypes, type Request as BotRequest, type TurnContext } from 'botbuilder';
import { Application } from '@microsoft/teams-ai';
import type { Redis } from 'ioredis';
import restify from 'restify';
import { createLogger, type Logger } from '../core/logger.ts';
import { connectRedis } from '../core/redis-connection.ts';
import { EnvelopeSigner } from '../jobs/envelope-signer.ts';
import { Authorizer } from './inbound/authorizer.ts';
import { z } from 'zod';
import { SetupTeamsAdapter, internalErrorMessage, type BotFrameworkEndpoints } from './bot-adapter.ts';
import { assertAuthenticationConfigured, type BotConfig } from './bot-config.ts';
import { personFrom, type ActivityRequest, type BotServices } from './bot-services.ts';
import { handleCardAction, runVerbs } from './inbound/card-actions/card-action-router.ts';
import { handleStartRotationClick } from './cert-watch/cert-watch.ts';
import { handlePrimaryOrgClick } from './inbound/card-actions/primary-org-click.ts';
import { verbs } from './cards/common/card-kit.ts';
import { BullJobDispatcher } from './outbound/job-dispatcher.ts';
import { routeMessage } from './inbound/message-router.ts';
import { ProgressRelay } from './reports/progress-relay.ts';
import { RunStore } from './runs/run-store.ts';
import { BullRunTimers, type RunTimerScheduler } from './runs/run-timers.ts';
import { TeamsPoster, type PostPolicy } from './teams-poster.ts';
import { TimerWorker } from './runs/timer-worker.ts';
import { startCertWatchSchedule } from './cert-watch/cert-watch.ts';
import { openProducerRedis } from './outbound/producer-redis.ts';
import { describeError } from './user-facing-error.ts';

export interface BotDeps {
  /** A connected Redis (the caller keeps ownership); otherwise the bot connects to REDIS_URL. */
  redis?: Redis;
  /**
   * The fail-fast connection for clicks and commands (the caller keeps ownership; open it with
   * openProducerRedis). Otherwise the bot derives its own from `redis` and closes it.
   */
  producerRedis?: Redis;
  logger?: Logger;
  /** The clock for approvals, expiry and the card update interval. */
  now?: () => number;
  /** How the poster waits between retries. */
  sleep?: (ms: number) => Promise<void>;
  postPolicy?: PostPolicy;
  relayConcurrency?: number;
  /** The run timer scheduler (the caller keeps ownership); otherwise BullMQ delayed jobs on setup-timers-<deployment>. */
  timers?: RunTimerScheduler;
  /** Host to listen on, overriding config.host (tests). */
  host?: string;
  /** Bot Framework endpoints instead of the public cloud's (a local OpenID metadata endpoint in tests). */
  botFrameworkEndpoints?: BotFrameworkEndpoints;
}

/** The least an activity must be before botbuilder sees it (botbuilder throws on a missing type). */
const inboundActivitySchema = z.object({ type: z.string().min(1) }).passthrough();

export interface RunningBot {
  url: string;
  port: number;
  /** The address the server listens on. */
  host: string;
  close(): Promise<void>;
}

const version = readVersion();

/**
 * Starts the bot: restify (`POST /api/messages`, `GET /healthz`), botbuilder CloudAdapter (teams-ai
 * TeamsAdapter) with ConfigurationBotFrameworkAuthentication, the teams-ai Application routes, and
 * the progress relay and the run timers. Port 0 picks a free port.
 */
export async function startBot(config: Readonly<BotConfig>, deps: BotDeps = {}): Promise<RunningBot> {
  const logger = deps.logger ?? createLogger({ name: 'setup-bot', level: config.logLevel });
  for (const warning of assertAuthenticationConfigured(config)) logger.warn({ appType: config.auth.MicrosoftAppType ?? '(not set)' }, warning);
  if (!config.appId) {
    logger.warn(
      { host: deps.host ?? config.host },
      'AUTHENTICATION IS OFF: MicrosoftAppId is not set, so the bot accepts activities from anyone without a token. ' +
        'That is only for local use (Agents Playground, tests); for Teams set MicrosoftAppType=SingleTenant with MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId (or UserAssignedMSI). ' +
        (config.hostExplicit || deps.host
          ? 'HOST is set: the bot listens there, unauthenticated.'
          : 'It listens on 127.0.0.1 only; set HOST to listen elsewhere.'),
    );
  }
  const now = deps.now ?? Date.now;
  const ownsRedis = !deps.redis;
  const redis = deps.redis ?? (await connectRedis(config.redisUrl));
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'Redis connection error'));
  // Workers keep `redis` (blocking, retries forever); everything a click or a command waits on
  // uses this one, which fails fast when Redis is away (producer-redis.ts).
  let producer: Redis;
  try {
    producer = deps.producerRedis ?? (await openProducerRedis(redis));
  } catch (error) {
    if (ownsRedis) redis.disconnect();
    throw error;
  }
  const ownsProducer = !deps.producerRedis;
  producer.on('error', (err: Error) => logger.debug({ err: err.message }, 'Redis (producer connection) error'));

  const signer = new EnvelopeSigner({ key: config.signingKey });
  const adapter = new SetupTeamsAdapter(config, {
    logger: logger.child({ component: 'bot-adapter' }),
    ...(deps.botFrameworkEndpoints ? { endpoints: deps.botFrameworkEndpoints } : {}),
  });
  adapter.onTurnError = async (context: TurnContext, error: Error) => {
    logger.error({ err: error, activityId: context.activity.id }, 'unhandled error in a turn');
    if (context.activity.type === 'message') {
      try {
        await context.sendActivity(describeError(error));
      } catch (sendError) {
        logger.warn({ err: sendError }, 'could not tell the user about the error');
      }
    }
  };

  const poster = new TeamsPoster({
    adapter,
    appId: config.appId,
    logger: logger.child({ component: 'teams-poster' }),
    now,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
    ...(deps.postPolicy ? { policy: deps.postPolicy } : {}),
  });
  const jobs = new BullJobDispatcher({ connection: producer, prefix: config.redisPrefix, deployment: config.deployment, signer });
  let ownTimers: BullRunTimers | undefined;
  const timers: RunTimerScheduler = deps.timers ?? (ownTimers = new BullRunTimers({ connection: producer, prefix: config.redisPrefix, deployment: config.deployment, now }));
  const services: BotServices = {
    config,
    authorizer: new Authorizer({ operators: config.operators, approvers: config.approvers }),
    runs: new RunStore({ redis: producer, prefix: config.redisPrefix, now }),
    jobs,
    timers,
    poster,
    audit: createAuditLog({ redis: producer, prefix: config.redisPrefix, now }),
    redis: producer,
    now,
    logger,
  };

  const app = new Application({ adapter, botAppId: config.appId, startTypingTimer: false, removeRecipientMention: true });
  const requestFor = (ctx: TurnContext): ActivityRequest => {
    const from = personFrom(ctx);
    return {
      ctx,
      from,
      services,
      log: logger.child({ activityId: ctx.activity.id, conversationId: ctx.activity.conversation?.id, aadObjectId: from.aadObjectId }),
    };
  };
  app.activity(ActivityTypes.Message, async (ctx) => {
    await routeMessage(requestFor(ctx));
  });
  for (const verb of runVerbs) app.adaptiveCards.actionExecute(verb, async (ctx, _state, data) => handleCardAction(requestFor(ctx), verb, data));
  app.adaptiveCards.actionExecute(verbs.startRotation, async (ctx, _state, data) => handleStartRotationClick(requestFor(ctx), data));
  app.adaptiveCards.actionExecute(verbs.primaryOrg, async (ctx, _state, data) => handlePrimaryOrgClick(requestFor(ctx), data));

  const relay = new ProgressRelay({ services, connection: redis, signer, ...(deps.relayConcurrency ? { concurrency: deps.relayConcurrency } : {}) });
  const timerWorker = new TimerWorker({ services, connection: redis });

  const server = restify.createServer({ name: 'setup-bot' });
  server.use(restify.plugins.bodyParser({ maxBodySize: 256 * 1024 }));
  server.post('/api/messages', async (req, res) => {
    if (!inboundActivitySchema.safeParse(req.body).success) {
      res.status(400);
      res.json({ error: 'The body must be a Bot Framework activity (a JSON object with a type).' });
      return;
    }
    try {
      // Answers 401 for a token that fails validation, 500 for a failure on the bot's side
      // (SetupTeamsAdapter), 200 or the invoke's status otherwise.
      await adapter.process(req as unknown as BotRequest, res, async (context) => {
        await app.run(context);
      });
    } catch (error) {
      logger.error({ err: error }, 'unexpected error on POST /api/messages');
      if (!res.headersSent) {
        res.status(500);
        res.json({ error: internalErrorMessage });
      }
    }
  });
  server.get('/healthz', async (_req, res) => {
    let redisOk = false;
    try {
      redisOk = (await producer.ping()) === 'PONG';
    } catch {
      redisOk = false;
    }
    res.status(redisOk ? 200 : 503);
    res.json({ ok: redisOk, redis: redisOk, version, authentication: config.appId ? 'on' : 'off', deployment: config.deployment });
  });

  try {
    await relay.waitUntilReady();
    await timerWorker.waitUntilReady();
    // Certificate expiry watch (cert-watch.ts): one job scheduler on the timer queue; every instance upserts the same one.
    await startCertWatchSchedule(config, producer, logger);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, deps.host ?? config.host, () => resolve());
    });
  } catch (error) {
    await relay.close();
    await timerWorker.close();
    await ownTimers?.close();
    await jobs.close();
    if (ownsProducer) producer.disconnect();
    if (ownsRedis) redis.disconnect();
    throw error;
  }
  const address = server.address() as AddressInfo | null;
  const port = address?.port ?? config.port;
  const host = address?.address ?? deps.host ?? config.host;
  const url = `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ host, port, authentication: config.appId ? 'on' : 'off', deployment: config.deployment, prefix: config.redisPrefix, version }, `setup bot listening on ${host}:${port}`);

  let closed = false;
  return {
    url,
    port,
    host,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      await relay.close();
      await timerWorker.close();
      await ownTimers?.close();
      await jobs.close();
      if (ownsProducer) await producer.quit().catch(() => producer.disconnect());
      if (ownsRedis) await redis.quit().catch(() => undefined);
      logger.info('setup bot stopped');
    },
  };
}

function readVersion(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const v = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    return typeof v === 'string' ? v : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
