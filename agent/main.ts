import { createLogger } from '../core/logger.ts';
import { connectRedis, redactUrl } from '../core/redis-connection.ts';
import { isSetupError, toSetupError } from '../core/setup-error.ts';
import { loadAgentConfig } from './agent-config.ts';
import { startAgent } from './agent-runtime.ts';

/** `npm run agent`: the on-premises agent. Configuration comes from the environment only. */
async function main(): Promise<void> {
  const bootLogger = createLogger({ name: 'agent' });
  let config;
  try {
    config = loadAgentConfig(process.env);
  } catch (error) {
    const e = toSetupError(error);
    bootLogger.fatal({ code: e.code }, `${e.message}\n${e.hint ?? ''}`);
    process.exitCode = 1;
    return;
  }
  const logger = createLogger({ name: 'agent', level: config.LOG_LEVEL });
  logger.info(
    { redis: redactUrl(config.REDIS_URL), prefix: config.REDIS_PREFIX, deployment: config.DEPLOYMENT, crm: config.CRM_URL, crmAuth: config.CRM_AUTH, crmUser: config.CRM_AUTH === 'ntlm' ? `${config.CRM_DOMAIN ?? ''}\\${config.CRM_USERNAME ?? ''}` : undefined },
    'starting the agent',
  );
  let redis;
  try {
    redis = await connectRedis(config.REDIS_URL);
  } catch (error) {
    const e = toSetupError(error);
    logger.fatal({ code: e.code }, `${e.message} ${e.hint ?? ''}`);
    process.exitCode = 1;
    return;
  }
  const agent = await startAgent(config, { redis, logger });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    const force = setTimeout(() => {
      logger.error('did not stop in time; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    void agent
      .close()
      .then(() => redis.quit())
      .catch((error: unknown) => logger.error({ err: toSetupError(error).message }, 'error while stopping'))
      .finally(() => clearTimeout(force));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  const e = toSetupError(error);
  createLogger({ name: 'agent' }).fatal({ code: e.code }, isSetupError(error) ? `${e.message} ${e.hint ?? ''}` : e.message);
  process.exitCode = 1;
});
