import { describe, expect, it } from 'vitest';
import { assertAuthenticationConfigured, loadBotConfig } from '../../bot/bot-config.ts';
import type { SetupError } from '../../core/setup-error.ts';

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

/** What `npm run bot` does at start: parse the environment, then check the authentication rules. */
function start(env: Record<string, string>): { error?: SetupError; warnings: string[] } {
  try {
    return { warnings: assertAuthenticationConfigured(loadBotConfig({ JOB_SIGNING_KEY: key, ...env })) };
  } catch (error) {
    return { error: error as SetupError, warnings: [] };
  }
}

const APP_ID = '4f0b6c8e-2a1d-4e7b-9c3f-5d8a1b2c3d4f';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const prod = { NODE_ENV: 'production' };
const singleTenant = { MicrosoftAppType: 'SingleTenant', MicrosoftAppId: APP_ID, MicrosoftAppPassword: 'secret', MicrosoftAppTenantId: TENANT };
const msi = { MicrosoftAppType: 'UserAssignedMSI', MicrosoftAppId: APP_ID, MicrosoftAppTenantId: TENANT };

function expectRefused(result: { error?: SetupError }, ...mustMention: RegExp[]): void {
  expect(result.error).toMatchObject({ code: 'CONFIG_INVALID' });
  const text = `${result.error?.message ?? ''} ${result.error?.hint ?? ''}`;
  for (const re of mustMention) expect(text).toMatch(re);
}

describe('production start rules (NODE_ENV=production)', () => {
  it('starts as SingleTenant with app id, password and tenant id', () => {
    expect(start({ ...prod, ...singleTenant })).toEqual({ warnings: [] });
  });

  it('starts as UserAssignedMSI with the identity\'s client id and the tenant id, without a password', () => {
    const r = start({ ...prod, ...msi });
    expect(r).toEqual({ warnings: [] });
    expect(loadBotConfig({ JOB_SIGNING_KEY: key, ...prod, ...msi }).auth).toEqual({ MicrosoftAppId: APP_ID, MicrosoftAppType: 'UserAssignedMSI', MicrosoftAppTenantId: TENANT });
  });

  it('refuses an unset MicrosoftAppType (botbuilder would treat it as MultiTenant), saying what to set', () => {
    const { MicrosoftAppType: _type, ...noType } = singleTenant;
    expectRefused(start({ ...prod, ...noType }), /MicrosoftAppType is not set/, /MultiTenant/, /31 July 2025/, /MicrosoftAppType=SingleTenant/, /UserAssignedMSI/);
  });

  it('refuses MultiTenant', () => {
    expectRefused(start({ ...prod, ...singleTenant, MicrosoftAppType: 'MultiTenant' }), /MicrosoftAppType is MultiTenant/, /single-tenant/, /MicrosoftAppTenantId/);
  });

  it('refuses SingleTenant without a tenant id', () => {
    const { MicrosoftAppTenantId: _t, ...noTenant } = singleTenant;
    expectRefused(start({ ...prod, ...noTenant }), /MicrosoftAppTenantId: is required when MicrosoftAppType is SingleTenant/, /directory \(tenant\) id/);
  });

  it('refuses SingleTenant without a client secret', () => {
    const { MicrosoftAppPassword: _p, ...noPassword } = singleTenant;
    expectRefused(start({ ...prod, ...noPassword }), /MicrosoftAppPassword: is required when MicrosoftAppType is SingleTenant/);
  });

  it('refuses UserAssignedMSI with a password', () => {
    expectRefused(start({ ...prod, ...msi, MicrosoftAppPassword: 'secret' }), /MicrosoftAppPassword: must not be set when MicrosoftAppType is UserAssignedMSI/);
  });

  it('refuses UserAssignedMSI without a tenant id', () => {
    const { MicrosoftAppTenantId: _t, ...noTenant } = msi;
    expectRefused(start({ ...prod, ...noTenant }), /MicrosoftAppTenantId: is required when MicrosoftAppType is UserAssignedMSI/);
  });

  it('refuses UserAssignedMSI without an app id (the identity\'s client id)', () => {
    const { MicrosoftAppId: _a, ...noId } = msi;
    expectRefused(start({ ...prod, ...noId }), /MicrosoftAppId: is required when MicrosoftAppType is UserAssignedMSI/, /client id of the user-assigned managed identity/);
  });

  it('refuses no app id at all (authentication off)', () => {
    expectRefused(start(prod), /without Bot Framework authentication: MicrosoftAppId is not set/, /SingleTenant/);
  });

  it('refuses an unknown MicrosoftAppType and a tenant id that is not one', () => {
    expectRefused(start({ ...prod, ...singleTenant, MicrosoftAppType: 'Federated' }), /MicrosoftAppType: must be MultiTenant, SingleTenant, UserAssignedMSI/);
    expectRefused(start({ ...prod, ...singleTenant, MicrosoftAppTenantId: 'evil.example/../x' }), /MicrosoftAppTenantId: must be the directory \(tenant\) id/);
  });
});

describe('outside production', () => {
  it('keeps authentication off without an app id (Agents Playground), without a warning here (the server warns that it is off)', () => {
    expect(start({})).toEqual({ warnings: [] });
  });

  it('starts MultiTenant or with no type, with a warning that production refuses it', () => {
    for (const env of [{ MicrosoftAppId: APP_ID, MicrosoftAppPassword: 'secret' }, { MicrosoftAppId: APP_ID, MicrosoftAppPassword: 'secret', MicrosoftAppType: 'MultiTenant' }]) {
      const r = start(env);
      expect(r.error).toBeUndefined();
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toMatch(/Production \(NODE_ENV=production\) refuses this/);
    }
    expect(start(singleTenant)).toEqual({ warnings: [] });
  });
});
