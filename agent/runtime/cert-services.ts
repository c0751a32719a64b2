import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/logger.ts';
import { SetupError } from '../../core/setup-error.ts';
import { jobTtlMs } from '../../jobs/job-options.ts';
import { RUN_TTL_SECONDS } from '../../jobs/runbook-types.ts';
import type { AgentConfig } from './config.ts';
import { readCertificateFile, summarizeDer } from '../certkit/kit.ts';
import { createChangeLock } from './change-lock.ts';
import { createStepJournal } from '../steps/journal.ts';
import { resolveCloudSettings } from '../adapters/graph/cloud-settings.ts';
import { createGraphClient, type GraphClient } from '../adapters/graph/client.ts';
import type { GraphApi } from '../adapters/graph/api.ts';
import type { CertServices, PowershellApi } from './job-context.ts';
import { createPowershellRunner } from '../adapters/powershell/runner.ts';

export interface CertServicesDeps {
  redis: Redis;
  logger: Logger;
  /** Replace the PowerShell runner (tests). */
  powershell?: PowershellApi;
  /** Replace the Graph client (tests). */
  graph?: GraphApi;
  /** The environment the PowerShell children's variables are picked from (default process.env; see powershell-runner.ts). */
  powershellEnv?: NodeJS.ProcessEnv;
}

export interface CertServicesHandle {
  services: CertServices;
  /** Closes the Graph client if one was built. */
  close(): Promise<void>;
}

/**
 * The step journal lives as long as a run (a halted runbook run can be resumed for RUN_TTL_SECONDS),
 * and at least as long as a signed rotation job can (its result is kept as long).
 */
export const CERT_JOURNAL_TTL_MS = Math.max(RUN_TTL_SECONDS * 1000, jobTtlMs['cert-rotate'] + 24 * 60 * 60_000);

/** The variables Graph still needs (empty when it is configured). */
export function graphMissing(config: AgentConfig): string[] {
  const missing: string[] = [];
  if (!config.GRAPH_TENANT_ID) missing.push('GRAPH_TENANT_ID');
  if (!config.GRAPH_CLIENT_ID) missing.push('GRAPH_CLIENT_ID');
  if (!config.GRAPH_CLIENT_SECRET && !config.GRAPH_CLIENT_CERT_FILE) missing.push('GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERT_FILE');
  return missing;
}

/** The SHA-1 thumbprint Windows shows of the first certificate of a PEM (null when it holds none that reads). */
function sha1Thumbprint(pem: string): string | null {
  try {
    return new X509Certificate(pem).fingerprint.replace(/:/g, '').toUpperCase();
  } catch {
    return null;
  }
}

async function readConfigFile(variable: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new SetupError('CONFIG_INVALID', `${variable} (${path}) cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, {
      hint: `Point ${variable} at a PEM file the agent's account can read, or leave it empty, and start again.`,
      cause: error,
    });
  }
}

/**
 * Builds what the certificate jobs use from the configuration: the PowerShell runner, the kit, the
 * step journal, and the Graph client, built lazily on the first job that needs it. The CA file
 * (TLS_CA_FILE) and the client certificate (GRAPH_CLIENT_CERT_FILE) are read here, at start, so a
 * wrong path stops the start with its name. None of the certificate settings is required to start.
 */
export async function createCertServices(config: AgentConfig, deps: CertServicesDeps): Promise<CertServicesHandle> {
  const caPem = config.TLS_CA_FILE ? await readConfigFile('TLS_CA_FILE', config.TLS_CA_FILE) : undefined;
  const clientCertificatePem = config.GRAPH_CLIENT_CERT_FILE ? await readConfigFile('GRAPH_CLIENT_CERT_FILE', config.GRAPH_CLIENT_CERT_FILE) : undefined;
  const missing = graphMissing(config);
  const cloud = resolveCloudSettings(config.CLOUD, { loginUrl: config.GRAPH_LOGIN_URL, graphUrl: config.GRAPH_URL });

  let built: GraphClient | undefined;
  const graph = (): GraphApi => {
    if (deps.graph) return deps.graph;
    if (missing.length > 0 || !config.GRAPH_TENANT_ID || !config.GRAPH_CLIENT_ID) {
      throw new SetupError('CONFIG_MISSING', `Microsoft Graph is not configured on the agent: set ${missing.join(', ')}.`, {
        hint: "Set these variables on the agent (see .env.example), restart it, then run the command again.",
        details: { missing },
      });
    }
    built ??= createGraphClient({
      loginUrl: cloud.loginUrl,
      graphUrl: cloud.graphUrl,
      tenantId: config.GRAPH_TENANT_ID,
      clientId: config.GRAPH_CLIENT_ID,
      ...(config.GRAPH_CLIENT_SECRET ? { clientSecret: config.GRAPH_CLIENT_SECRET } : {}),
      ...(clientCertificatePem ? { clientCertificatePem } : {}),
      ...(caPem ? { caPem } : {}),
      logger: deps.logger,
    });
    return built;
  };

  const powershell =
    deps.powershell ??
    createPowershellRunner({
      executable: config.POWERSHELL,
      timeoutMs: config.POWERSHELL_TIMEOUT_MS,
      passEnv: config.POWERSHELL_PASS_ENV,
      logger: deps.logger,
      ...(deps.powershellEnv ? { env: deps.powershellEnv } : {}),
    });

  return {
    services: {
      settings: {
        ASYNC_SERVERS: config.ASYNC_SERVERS,
        ASYNC_SERVICE_ACCOUNT: config.ASYNC_SERVICE_ACCOUNT,
        CERT_DIR: config.CERT_DIR,
        CERT_NEW_PFX: config.CERT_NEW_PFX,
        CERT_PFX_PASSWORD: config.CERT_PFX_PASSWORD,
        CERT_MIN_DAYS_LEFT: config.CERT_MIN_DAYS_LEFT,
        CERT_VERIFY_MAILBOXES: config.CERT_VERIFY_MAILBOXES,
        CERT_RETIRE_OLD: config.CERT_RETIRE_OLD,
        CLOUD: config.CLOUD,
      },
      exchange: {
        ewsAppId: config.EWS_APP_ID,
        clientId: config.GRAPH_CLIENT_ID ?? null,
        certificateThumbprint: config.EXO_CERT_THUMBPRINT ?? (clientCertificatePem ? sha1Thumbprint(clientCertificatePem) : null),
        organization: config.EXO_ORGANIZATION ?? null,
        environment: cloud.exchangeEnvironment,
      },
      powershell,
      kit: { readCertificateFile, summarizeDer },
      graph,
      graphMissing: deps.graph ? [] : missing,
      journal: createStepJournal({ redis: deps.redis, prefix: config.REDIS_PREFIX, signingKey: config.JOB_SIGNING_KEY, ttlMs: CERT_JOURNAL_TTL_MS }),
      lock: createChangeLock({ redis: deps.redis, prefix: config.REDIS_PREFIX, logger: deps.logger, ttlMs: config.CERT_LOCK_TTL_MS }),
    },
    async close() {
      await built?.close();
    },
  };
}
