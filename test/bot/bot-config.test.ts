import { describe, expect, it } from 'vitest';
import { assertAuthenticationConfigured, loadBotConfig } from '../../bot/bot-config.ts';

const key = 'k'.repeat(32);

describe('loadBotConfig', () => {
  it('applies the defaults', () => {
    const c = loadBotConfig({ JOB_SIGNING_KEY: key });
    expect(c).toMatchObject({ port: 3978, redisUrl: 'redis://127.0.0.1:6379', redisPrefix: 'setup', deployment: 'default', approvalTtlMinutes: 60, cardUpdateIntervalMs: 2000, operators: [], approvers: [], appId: '', production: false });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('parses the id lists (lower-cased, trimmed)', () => {
    const c = loadBotConfig({ JOB_SIGNING_KEY: key, SETUP_OPERATORS: ' AAAAAAAA-1111-1111-1111-111111111111 , ', SETUP_APPROVERS: 'bbbbbbbb-2222-2222-2222-222222222222' });
    expect(c.operators).toEqual(['aaaaaaaa-1111-1111-1111-111111111111']);
    expect(c.approvers).toEqual(['bbbbbbbb-2222-2222-2222-222222222222']);
  });

  it('names each bad variable', () => {
    let caught: unknown;
    try {
      loadBotConfig({ JOB_SIGNING_KEY: 'short', SETUP_OPERATORS: 'alice', PORT: 'x' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'CONFIG_INVALID' });
    const message = (caught as Error).message;
    expect(message).toContain('JOB_SIGNING_KEY');
    expect(message).toContain('SETUP_OPERATORS');
    expect(message).toContain('PORT');
    expect(() => loadBotConfig({})).toThrow(/JOB_SIGNING_KEY/);
  });

  it('refuses production without an app id, allows it with one', () => {
    const prod = loadBotConfig({ JOB_SIGNING_KEY: key, NODE_ENV: 'production' });
    expect(() => assertAuthenticationConfigured(prod)).toThrow(/MicrosoftAppId/);
    const ok = loadBotConfig({ JOB_SIGNING_KEY: key, NODE_ENV: 'production', MicrosoftAppId: 'app', MicrosoftAppPassword: 'pw', MicrosoftAppType: 'SingleTenant', MicrosoftAppTenantId: 't' });
    expect(() => assertAuthenticationConfigured(ok)).not.toThrow();
    expect(ok.auth).toEqual({ MicrosoftAppId: 'app', MicrosoftAppPassword: 'pw', MicrosoftAppType: 'SingleTenant', MicrosoftAppTenantId: 't' });
    expect(() => loadBotConfig({ JOB_SIGNING_KEY: key, MicrosoftAppType: 'SingleTenant', MicrosoftAppId: 'a' })).toThrow(/MicrosoftAppTenantId/);
  });

  it('listens on 127.0.0.1 without authentication and on all interfaces with it, unless HOST says otherwise', () => {
    expect(loadBotConfig({ JOB_SIGNING_KEY: key })).toMatchObject({ host: '127.0.0.1', hostExplicit: false });
    expect(loadBotConfig({ JOB_SIGNING_KEY: key, MicrosoftAppId: 'app' }).host).toBe('0.0.0.0');
    expect(loadBotConfig({ JOB_SIGNING_KEY: key, HOST: '0.0.0.0' })).toMatchObject({ host: '0.0.0.0', hostExplicit: true });
    expect(loadBotConfig({ JOB_SIGNING_KEY: key, MicrosoftAppId: 'app', HOST: '10.0.0.5' }).host).toBe('10.0.0.5');
    expect(() => loadBotConfig({ JOB_SIGNING_KEY: key, HOST: 'a b' })).toThrow(/HOST/);
  });
});
