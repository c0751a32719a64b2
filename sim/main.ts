import { z } from 'zod';
import { createLogger } from '../core/logger.ts';
import { parseEnv } from '../core/parse-env.ts';
import { fileURLToPath } from 'node:url';
import { startCrmSimulator } from './crm-simulator.ts';
import { startGraphSimulator } from './graph-simulator.ts';
import { simScenarios } from './sim-state.ts';

/**
 * `npm run sim`: the CRM Web API simulator with its S2S side (PowerShell stand-in endpoint) and
 * the Graph / Entra simulator sharing the same S2S state, for the demo and manual tries. The log
 * says what to set in the agent's environment (CRM_URL, POWERSHELL, PWSH_SIM_URL, GRAPH_*).
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
  /** 'fresh': an unconfigured deployment for the runbook (`@setup run setup`); default 'configured'. */
  SIM_SCENARIO: z.enum(simScenarios).default('configured'),
  SIM_CERT_DAYS_LEFT: int(-3650, 3650).default(200),
  SIM_ASYNC_SERVERS: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,63}(,[A-Za-z0-9-]{1,63}){0,19}$/, 'use up to 20 comma-separated server names')
    .default('CRMAPP01,CRMAPP02'),
  SIM_SERVICE_ACCOUNT: z.string().regex(/^[^\\\s]{1,64}\\[^\\\s]{1,64}$/, 'use DOMAIN\\user').default('CONTOSO\\crmasync'),
  /** 0 = a random free port; the Graph simulator is off when SIM_GRAPH=false. */
  SIM_GRAPH_PORT: int(0, 65_535).default(3980),
  SIM_GRAPH: z.enum(['true', 'false']).default('true'),
  /** Where the Graph simulator writes its CA certificate (the agent's TLS_CA_FILE); default a temporary folder. */
  SIM_TLS_DIR: z.string().min(1).optional(),
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
    certDaysLeft: env.SIM_CERT_DAYS_LEFT,
    asyncServers: env.SIM_ASYNC_SERVERS.split(','),
    serviceAccount: env.SIM_SERVICE_ACCOUNT,
    scenario: env.SIM_SCENARIO,
    logger,
  });
  const graph = env.SIM_GRAPH === 'true' ? await startGraphSimulator({ s2s: simulator.s2s, host: env.SIM_HOST, port: env.SIM_GRAPH_PORT, logger, ...(env.SIM_TLS_DIR ? { tlsDir: env.SIM_TLS_DIR } : {}) }) : undefined;
  const adminUrl = new URL('/_sim/state/summary', simulator.orgUrl).toString();
  logger.info({ orgUrl: simulator.orgUrl, adminUrl, scenario: env.SIM_SCENARIO }, `CRM simulator ready (${env.SIM_SCENARIO} deployment): set CRM_URL=${simulator.orgUrl} and CRM_AUTH=none`);
  const standIn = fileURLToPath(new URL('./bin/pwsh-sim.mjs', import.meta.url));
  logger.info(
    { s2sUrl: `${simulator.baseUrl}/_sim/s2s`, asyncServers: env.SIM_ASYNC_SERVERS, serviceAccount: env.SIM_SERVICE_ACCOUNT },
    `PowerShell stand-in: set POWERSHELL=${standIn} PWSH_SIM_URL=${simulator.baseUrl} POWERSHELL_PASS_ENV=PWSH_SIM_URL ASYNC_SERVERS=${env.SIM_ASYNC_SERVERS} ASYNC_SERVICE_ACCOUNT=${env.SIM_SERVICE_ACCOUNT}`,
  );
  if (graph) {
    logger.info(
      { loginUrl: graph.loginUrl, graphUrl: graph.graphUrl, caFile: graph.caFile },
      `Graph simulator ready: set GRAPH_LOGIN_URL=${graph.loginUrl} GRAPH_URL=${graph.graphUrl} TLS_CA_FILE=${graph.caFile} ` +
        `GRAPH_TENANT_ID=${simulator.s2s.tenant.id} GRAPH_CLIENT_ID=${simulator.s2s.app.clientId} and GRAPH_CLIENT_SECRET to the simulator's (see sim/README.md)`,
    );
  }

  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'stopping the CRM simulator');
    Promise.all([simulator.close(), graph?.close()]).then(
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
