import { createLogger } from '../core/logger.ts';
import { connectRedis, redisHelp } from '../core/redis-connection.ts';
import { toSetupError } from '../core/setup-error.ts';
import { loadBotConfig } from './bot-config.ts';
import { startBot } from './bot-server.ts';

/** `npm run bot`: load the configuration, connect Redis, start, stop cleanly on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const bootLogger = createLogger({ name: 'setup-bot' });
  let config;
  try {
    config = loadBotConfig(process.env);
  } catch (error) {
    const e = toSetupError(error);
    bootLogger.fatal({ code: e.code }, `${e.message}${e.hint ? `\n${e.hint}` : ''}`);
    process.exit(1);
  }
  const logger = createLogger({ name: 'setup-bot', level: config.logLevel });
  let redis;
  try {
    redis = await connectRedis(config.redisUrl);
  } catch (error) {
    const e = toSetupError(error);
    logger.fatal({ code: e.code }, `${e.message} ${e.hint ?? redisHelp}`);
    process.exit(1);
  }
  let bot;
  try {
    bot = await startBot(config, { redis, logger });
  } catch (error) {
    const e = toSetupError(error);
    logger.fatal({ code: e.code, err: e }, `${e.message}${e.hint ? ` ${e.hint}` : ''}`);
    redis.disconnect();
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    const timer = setTimeout(() => {
      logger.warn('stop took too long: exiting');
      process.exit(1);
    }, 10_000);
    timer.unref();
    bot
      .close()
      .then(() => redis.quit())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

void main();
