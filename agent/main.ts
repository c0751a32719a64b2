import { createLogger } from '../core/logger.ts';
import { toSetupError } from '../core/setup-error.ts';
import { bootAgent } from './runtime/boot.ts';

/** `npm run agent`: the on-premises agent. Configuration comes from the environment only. */
async function main(): Promise<void> {
  const agent = await bootAgent(process.env);
  if (!agent) {
    // Everything bootAgent opened is closed; should anything else still hold the process, go anyway.
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 5_000).unref();
    return;
  }
  const { logger } = agent;
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
      .stop()
      .catch((error: unknown) => logger.error({ err: toSetupError(error).message }, 'error while stopping'))
      .finally(() => clearTimeout(force));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  const e = toSetupError(error);
  createLogger({ name: 'agent' }).fatal({ code: e.code }, e.hint ? `${e.message}\n${e.hint}` : e.message);
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 5_000).unref();
});
