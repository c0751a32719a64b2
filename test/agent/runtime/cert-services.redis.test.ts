import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../agent/runtime/config.ts';
import { createCertServices } from '../../../agent/runtime/cert-services.ts';
import { cloudSettings, resolveCloudSettings } from '../../../agent/adapters/graph/cloud-settings.ts';
import { createLogger, redactPaths, silentLogger } from '../../../core/logger.ts';
import { connectRedis } from '../../../core/redis-connection.ts';
import { SetupError } from '../../../core/setup-error.ts';
import { deletePrefixedKeys } from '../../support/delete-prefixed-keys.ts';

const base = { JOB_SIGNING_KEY: 'k'.repeat(32), CRM_URL: 'http://crm.local/contoso', CRM_AUTH: 'none' };
const configError = (env: Record<string, string>) => {
  try {
    loadAgentConfig({ ...base, ...env });
  } catch (e) {
    return e as SetupError;
  }
  throw new Error('expected a configuration error');
};

let redis: Redis;
const prefix = `t-${randomUUID()}`;
beforeAll(async () => {
  redis = await connectRedis('redis://127.0.0.1:6379');
});
afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

describe('certificate settings', () => {
  it('are all optional, with the documented defaults', () => {
    const config = loadAgentConfig(base);
    expect(config).toMatchObject({
      POWERSHELL: 'powershell.exe',
      POWERSHELL_TIMEOUT_MS: 300_000,
      ASYNC_SERVERS: [],
      CERT_NEW_PFX: 's2s-new.pfx',
      CERT_MIN_DAYS_LEFT: 30,
      CERT_VERIFY_MAILBOXES: 10,
      CERT_RETIRE_OLD: 'remove',
      CLOUD: 'public',
    });
    expect(config.CERT_DIR).toBeUndefined();
    expect(config.GRAPH_TENANT_ID).toBeUndefined();
  });

  it('parse lists, all, URLs and refuse what cannot be right, naming each variable and never echoing a secret', () => {
    const config = loadAgentConfig({ ...base, ASYNC_SERVERS: ' CRMAPP01 , crmapp02.contoso.local,', CERT_VERIFY_MAILBOXES: 'all', ASYNC_SERVICE_ACCOUNT: 'CONTOSO\\crmasync', GRAPH_URL: 'https://graph.local:8443/graph/', CLOUD: 'usgovhigh' });
    expect(config.ASYNC_SERVERS).toEqual(['CRMAPP01', 'crmapp02.contoso.local']);
    expect(config.CERT_VERIFY_MAILBOXES).toBe('all');
    expect(config.GRAPH_URL).toBe('https://graph.local:8443/graph');

    const error = configError({
      ASYNC_SERVERS: 'CRMAPP01;calc.exe',
      ASYNC_SERVICE_ACCOUNT: 'crmasync',
      CERT_DIR: 'relative/dir',
      CERT_NEW_PFX: '../x.pfx',
      CERT_VERIFY_MAILBOXES: 'some',
      CERT_RETIRE_OLD: 'never',
      CLOUD: 'china',
      GRAPH_TENANT_ID: 'contoso.onmicrosoft.com',
      GRAPH_LOGIN_URL: 'http://login.local',
      GRAPH_CLIENT_SECRET: 'super-secret-value',
      GRAPH_CLIENT_CERT_FILE: '/etc/agent/graph.pem',
    });
    expect(error.code).toBe('CONFIG_INVALID');
    for (const name of ['ASYNC_SERVERS', 'ASYNC_SERVICE_ACCOUNT', 'CERT_DIR', 'CERT_NEW_PFX', 'CERT_VERIFY_MAILBOXES', 'CERT_RETIRE_OLD', 'CLOUD', 'GRAPH_TENANT_ID', 'GRAPH_LOGIN_URL']) {
      expect(error.message).toContain(name);
    }
    expect(error.message).not.toContain('super-secret-value');
    const both = configError({ GRAPH_CLIENT_SECRET: 'super-secret-value', GRAPH_CLIENT_CERT_FILE: '/etc/agent/graph.pem' });
    expect(both.message).toMatch(/GRAPH_CLIENT_SECRET: set either GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERT_FILE, not both/);
    expect(both.message).not.toContain('super-secret-value');
  });

  it('map CLOUD to the metadata URL and hosts, with overrides for the hosts only', () => {
    expect(resolveCloudSettings('public')).toEqual(cloudSettings.public);
    expect(resolveCloudSettings('usgovhigh').metadataUrl).toBe('https://login.microsoftonline.us/metadata/json/1');
    expect(resolveCloudSettings('public', { loginUrl: 'https://127.0.0.1:1', graphUrl: 'https://127.0.0.1:1/graph' })).toEqual({
      metadataUrl: 'https://accounts.accesscontrol.windows.net/metadata/json/1',
      loginUrl: 'https://127.0.0.1:1',
      graphUrl: 'https://127.0.0.1:1/graph',
      exchangeEnvironment: 'O365Default',
    });
    // Connect-ExchangeOnline -ExchangeEnvironmentName follows the cloud (d365-contract.md, GCC High).
    expect(resolveCloudSettings('usgovhigh').exchangeEnvironment).toBe('O365USGovGCCHigh');
  });

  it('are redacted when a configuration object is logged', () => {
    for (const path of ['*.CERT_PFX_PASSWORD', '*.GRAPH_CLIENT_SECRET', '*.pfxPassword']) expect(redactPaths).toContain(path);
    const lines: string[] = [];
    const logger = createLogger({ name: 't', destination: { write: (line: string) => lines.push(line) } });
    logger.info({ config: { CERT_PFX_PASSWORD: 'p-123', GRAPH_CLIENT_SECRET: 's-456' } }, 'x');
    expect(lines.join('')).not.toMatch(/p-123|s-456/);
  });
});

describe('createCertServices', () => {
  it('starts without Graph settings; Graph is built only when a job asks, else CONFIG_MISSING naming the variables', async () => {
    const handle = await createCertServices(loadAgentConfig({ ...base, REDIS_PREFIX: prefix }), { redis, logger: silentLogger() });
    expect(handle.services.graphMissing).toEqual(['GRAPH_TENANT_ID', 'GRAPH_CLIENT_ID', 'GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERT_FILE']);
    expect(() => handle.services.graph()).toThrow(/Microsoft Graph is not configured on the agent: set GRAPH_TENANT_ID, GRAPH_CLIENT_ID/);
    await handle.close();
  });

  it('builds the certificate-change lock on the agent\'s Redis prefix, one per deployment, with a TTL', async () => {
    const handle = await createCertServices(loadAgentConfig({ ...base, REDIS_PREFIX: prefix }), { redis, logger: silentLogger() });
    const held = await handle.services.lock.acquire('default', { type: 'cert-rotate', runId: 'cfgtest01', attempt: 1 });
    try {
      expect(await redis.get(`${prefix}:cert-lock:default`)).toMatch(/^cert-rotate:cfgtest01:a1:[0-9a-f]{16}$/);
      const ttl = await redis.pttl(`${prefix}:cert-lock:default`);
      expect(ttl).toBeGreaterThan(60_000);
      expect(ttl).toBeLessThanOrEqual(120_000);
      const other = await handle.services.lock.acquire('default', { type: 'cert-rollback', runId: 'cfgtest02', attempt: 1 }).catch((e: unknown) => e);
      expect(other).toBeInstanceOf(SetupError);
      expect((other as SetupError).retryable).toBe(true);
      // Another deployment has its own lock.
      const elsewhere = await handle.services.lock.acquire('other', { type: 'cert-rollback', runId: 'cfgtest02', attempt: 1 });
      await elsewhere.release();
    } finally {
      await held.release();
      await handle.close();
    }
    expect(await redis.exists(`${prefix}:cert-lock:default`, `${prefix}:cert-lock:other`)).toBe(0);
  });

  it('stops the start with CONFIG_INVALID when TLS_CA_FILE cannot be read', async () => {
    const error = await createCertServices(loadAgentConfig({ ...base, TLS_CA_FILE: '/nonexistent/ca.pem' }), { redis, logger: silentLogger() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SetupError);
    expect((error as SetupError).code).toBe('CONFIG_INVALID');
    expect((error as SetupError).message).toMatch(/TLS_CA_FILE \(\/nonexistent\/ca\.pem\) cannot be read: ENOENT/);
  });
});
