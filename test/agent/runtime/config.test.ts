import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../agent/runtime/config.ts';

const key = 'k'.repeat(32);

describe('loadAgentConfig', () => {
  it('applies the defaults and strips the trailing slash of CRM_URL', () => {
    const config = loadAgentConfig({ JOB_SIGNING_KEY: key, CRM_URL: 'http://crm.local/contoso/', CRM_AUTH: 'none' });
    expect(config).toMatchObject({
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_PREFIX: 'setup',
      DEPLOYMENT: 'default',
      CRM_URL: 'http://crm.local/contoso',
      CRM_BATCH_SIZE: 100,
      CRM_CONCURRENCY: 4,
      CRM_PAGE_SIZE: 1000,
      CRM_TIMEOUT_MS: 30_000,
      CRM_MAX_RETRIES: 4,
      TEST_POLL_INTERVAL_MS: 10_000,
      TEST_TIMEOUT_MS: 1_800_000,
      PROGRESS_INTERVAL_MS: 2_000,
      AGENT_CONCURRENCY: 2,
      HEARTBEAT_INTERVAL_MS: 15_000,
      LOG_LEVEL: 'info',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('requires the NTLM account when CRM_AUTH=ntlm and names each missing variable', () => {
    expect(() => loadAgentConfig({ JOB_SIGNING_KEY: key, CRM_URL: 'http://crm.local/contoso', CRM_AUTH: 'ntlm', CRM_USERNAME: 'svc' })).toThrow(
      /CRM_PASSWORD: is required when CRM_AUTH=ntlm[\s\S]*CRM_DOMAIN: is required/,
    );
    const ok = loadAgentConfig({ JOB_SIGNING_KEY: key, CRM_URL: 'https://crm.local/contoso', CRM_AUTH: 'ntlm', CRM_USERNAME: 'svc', CRM_PASSWORD: 'p', CRM_DOMAIN: 'CONTOSO' });
    expect(ok.CRM_AUTH).toBe('ntlm');
  });

  it('rejects a short signing key, limits out of range and a missing CRM_URL', () => {
    const error = (() => {
      try {
        loadAgentConfig({ JOB_SIGNING_KEY: 'short', CRM_AUTH: 'none', CRM_BATCH_SIZE: '1001', CRM_PAGE_SIZE: '6000' });
      } catch (e) {
        return e as Error & { code: string };
      }
      return undefined;
    })();
    expect(error?.code).toBe('CONFIG_INVALID');
    for (const name of ['JOB_SIGNING_KEY', 'CRM_URL', 'CRM_BATCH_SIZE', 'CRM_PAGE_SIZE']) expect(error?.message).toContain(name);
    expect(error?.message).not.toContain('short');
  });
});
