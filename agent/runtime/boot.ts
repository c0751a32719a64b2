import type { Redis } from 'ioredis';
import { createLogger, type Logger } from '../../core/logger.ts';
import { connectRedis, redactUrl } from '../../core/redis-connection.ts';
import { toSetupError } from '../../core/setup-error.ts';
import { loadAgentConfig } from './config.ts';
import { startAgent, type RunningAgent } from './start-agent.ts';

export interface BootDeps {
  /** The process logger, once the configuration (and so LOG_LEVEL) is known. */
  logger?: (level: string | undefined) => Logger;
  connect?: (url: string) => Promise<Redis>;
  start?: typeof startAgent;
}

export interface BootedAgent {
  logger: Logger;
  /** Closes the agent, then the Redis connection. */
  stop(): Promise<void>;
}

/**
 * What `npm run agent` does before it waits for signals: configuration, Redis, the agent. When a
 * step fails it logs the message and what to do, closes what it opened (so nothing keeps the
 * process alive) and returns undefined: the caller exits with 1.
 */
export async function bootAgent(env: NodeJS.ProcessEnv, deps: BootDeps = {}): Promise<BootedAgent | undefined> {
  const makeLogger = deps.logger ?? ((level: string | undefined) => createLogger({ name: 'agent', ...(level ? { level } : {}) }));
  const connect = deps.connect ?? ((url: string) => connectRedis(url));
  const start = deps.start ?? startAgent;
  const fatal = (logger: Logger, error: unknown, what: string) => {
    const e = toSetupError(error);
    logger.fatal({ code: e.code }, e.hint ? `${what}: ${e.message}\n${e.hint}` : `${what}: ${e.message}`);
  };

  let config;
  try {
    config = loadAgentConfig(env);
  } catch (error) {
    fatal(makeLogger(undefined), error, 'The agent cannot start');
    return undefined;
  }
  const logger = makeLogger(config.LOG_LEVEL);
  logger.info(
    { redis: redactUrl(config.REDIS_URL), prefix: config.REDIS_PREFIX, deployment: config.DEPLOYMENT, crm: config.CRM_URL, crmAuth: config.CRM_AUTH, crmUser: config.CRM_AUTH === 'ntlm' ? `${config.CRM_DOMAIN ?? ''}\\${config.CRM_USERNAME ?? ''}` : undefined, cloud: config.CLOUD, powershell: config.POWERSHELL },
    'starting the agent',
  );
  let redis: Redis;
  try {
    redis = await connect(config.REDIS_URL);
  } catch (error) {
    fatal(logger, error, 'The agent cannot start');
    return undefined;
  }
  let agent: RunningAgent;
  try {
    agent = await start(config, { redis, logger });
  } catch (error) {
    fatal(logger, error, 'The agent cannot start');
    await redis.quit().catch(() => redis.disconnect());
    return undefined;
  }
  return {
    logger,
    async stop() {
      try {
        await agent.close();
      } finally {
        await redis.quit().catch(() => redis.disconnect());
      }
    },
  };
}
