import { z } from 'zod';
import { createLogger } from '../core/logger.ts';
import { parseEnv } from '../core/parse-env.ts';
import { startCrmSimulator } from './crm-simulator.ts';

/**
 * `npm run sim`: the CRM Web API simulator on its own (for the demo and manual tries). Point the
 * agent's CRM_URL at the logged org URL (with CRM_AUTH=none).
 */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const simEnvSchema = z.object({
  SIM_PORT: int(0, 65_535).default(3979),
  SIM_HOST: z.string().min(1).max(255).default('127.0.0.1'),
  SIM_ORG: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1-64 letters, digits, - or _').default('contoso'),
  SIM_MAILBOXES: int(0, 200_000).default(320),
  SIM_LATENCY_MS: int(0, 600_000).default(0),
  SIM_TEST_DELAY_MS: int(0, 86_400_000).default(1500),
  SIM_FAIL_RATE: z.coerce.number().min(0).max(1).default(0),
  SIM_SEED: int(0, 4_294_967_295).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

async function main(): Promise<void> {
  const logger = createLogger({ name: 'crm-sim' });
  let env: z.output<typeof simEnvSchema>;
  try {
    env = parseEnv(simEnvSchema, process.env);
  } catch (error) {
    logger.fatal({ err: error }, error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
    return;
  }
  logger.level = env.LOG_LEVEL;
  const simulator = await startCrmSimulator({
    host: env.SIM_HOST,
    port: env.SIM_PORT,
    orgName: env.SIM_ORG,
    mailboxCount: env.SIM_MAILBOXES,
    latencyMs: env.SIM_LATENCY_MS,
    testDelayMs: env.SIM_TEST_DELAY_MS,
    failRate: env.SIM_FAIL_RATE,
    ...(env.SIM_SEED === undefined ? {} : { seed: env.SIM_SEED }),
    logger,
  });
  const adminUrl = new URL('/_sim/state/summary', simulator.orgUrl).toString();
  logger.info({ orgUrl: simulator.orgUrl, adminUrl }, `CRM simulator ready: set CRM_URL=${simulator.orgUrl} and CRM_AUTH=none`);

  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'stopping the CRM simulator');
    simulator.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

void main();
