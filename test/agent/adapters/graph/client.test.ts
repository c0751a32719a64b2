import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { CRM_APP_ID, type KeyCredentialInput } from '../../../../agent/adapters/graph/api.ts';
import { createGraphClient, type GraphClient, type GraphClientOptions } from '../../../../agent/adapters/graph/client.ts';
import { createLogger } from '../../../../core/logger.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import { startGraphSimulator, type GraphSimulator } from '../../../../sim/graph-simulator.ts';
import type { S2SState } from '../../../../sim/s2s-state.ts';
import { buildGraphTestState, makeCertificate, type TestCertificate } from '../../../sim/graph-state-builder.ts';

let sim: GraphSimulator | undefined;
const clients: GraphClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await sim?.close();
  sim = undefined;
});

interface Setup {
  sim: GraphSimulator;
  state: S2SState;
  appCertificate: TestCertificate;
  currentS2S: TestCertificate;
  sleeps: number[];
  logs: string[];
  client(overrides?: Partial<GraphClientOptions>): GraphClient;
}

async function setup(permissions?: string[]): Promise<Setup> {
  const built = buildGraphTestState(permissions === undefined ? {} : { permissions });
  const started = await startGraphSimulator({ s2s: built.state });
  sim = started;
  const sleeps: number[] = [];
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(chunk.toString('utf8'));
      callback();
    },
  });
  const logger = createLogger({ name: 'graph-client-test', level: 'debug', destination });
  return {
    sim: started,
    ...built,
    sleeps,
    logs,
    client(overrides = {}) {
      const client = createGraphClient({
        loginUrl: started.loginUrl,
        graphUrl: started.graphUrl,
        tenantId: built.state.tenant.id,
        clientId: built.state.app.clientId,
        clientSecret: built.state.app.clientSecret,
        caPem: started.caPem,
        logger,
        maxRetries: 3,
        sleep: (ms) => {
          sleeps.push(ms);
          return Promise.resolve();
        },
        ...overrides,
      });
      clients.push(client);
      return client;
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<SetupError> {
  const error: unknown = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(SetupError);
  return error as SetupError;
}

function toInput(cert: TestCertificate): KeyCredentialInput {
  return {
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    key: cert.derBase64,
    displayName: cert.subject,
    startDateTime: cert.notBefore,
    endDateTime: cert.notAfter,
    customKeyIdentifier: Buffer.from(cert.thumbprint, 'hex').toString('base64'),
  };
}

describe('graph client against the Graph simulator (HTTPS, sim CA trusted through caPem)', () => {
  it('reads the tenant id with a client secret, and reuses the token', async () => {
    const s = await setup();
    const client = s.client();
    expect(await client.getTenantId()).toBe(s.state.tenant.id);
    expect(await client.getTenantId()).toBe(s.state.tenant.id);
    expect(s.sim.stats.byOperation).toMatchObject({ token: 1, 'get-organization': 2 });
    expect(s.sim.stats.byOperation['openid-configuration']).toBeUndefined();
    expect(s.logs.join('')).not.toContain(s.state.app.clientSecret);
    expect(s.logs.join('')).not.toMatch(/Bearer /);
  });

  it('signs in with a certificate credential (client assertion) when given a PEM with certificate and key', async () => {
    const s = await setup();
    const client = s.client({ clientSecret: 'wrong-secret-not-used', clientCertificatePem: `${s.appCertificate.certPem}\n${s.appCertificate.keyPem}` });
    expect(await client.getTenantId()).toBe(s.state.tenant.id);
    expect(s.sim.stats.byStatus['401']).toBeUndefined();
  });

  it('maps a certificate that is not on the app registration to GRAPH_AUTH_FAILED (AADSTS700027)', async () => {
    const s = await setup();
    const stranger = makeCertificate({ commonName: 'not-uploaded' });
    const client = s.client({ clientCertificatePem: `${stranger.certPem}${stranger.keyPem}` });
    const error = await failure(client.getTenantId());
    expect(error.code).toBe('GRAPH_AUTH_FAILED');
    expect(error.message).toContain('AADSTS700027');
    expect(error.hint).toContain('GRAPH_CLIENT_CERT_FILE');
    expect(error.message).not.toMatch(/PRIVATE KEY/);
  });

  it('returns the CRM service principal with the keys of its credentials', async () => {
    const s = await setup();
    const sp = await s.client().getCrmServicePrincipal();
    expect(sp.id).toBe(s.state.servicePrincipal.id);
    expect(sp.appId).toBe(CRM_APP_ID);
    expect(sp.servicePrincipalNames).toEqual(s.state.servicePrincipal.servicePrincipalNames);
    expect(sp.keyCredentials).toHaveLength(1);
    expect(sp.keyCredentials[0]).toMatchObject({ key: s.currentS2S.derBase64, type: 'AsymmetricX509Cert', usage: 'Verify', displayName: s.currentS2S.subject });
    expect(s.sim.stats.byOperation).toMatchObject({ 'list-service-principals': 1, 'get-service-principal': 1 });
  });

  it('read-merge-write keeps the existing credential with its key and adds the new one', async () => {
    const s = await setup();
    const client = s.client();
    const before = await client.getCrmServicePrincipal();
    const existing = before.keyCredentials[0];
    if (!existing?.key) throw new Error('the seeded credential has no key');
    const next = makeCertificate({ commonName: 'crm-s2s-next.contoso.com', days: 400 });
    await client.setKeyCredentials(before.id, [
      {
        keyId: existing.keyId,
        type: 'AsymmetricX509Cert',
        usage: 'Verify',
        key: existing.key,
        displayName: existing.displayName ?? '',
        startDateTime: existing.startDateTime ?? '',
        endDateTime: existing.endDateTime ?? '',
        ...(existing.customKeyIdentifier === null ? {} : { customKeyIdentifier: existing.customKeyIdentifier }),
      },
      toInput(next),
    ]);
    const after = await client.getCrmServicePrincipal();
    expect(after.keyCredentials).toHaveLength(2);
    expect(after.keyCredentials[0]).toEqual(existing);
    expect(after.keyCredentials[1]).toMatchObject({ key: next.derBase64, customKeyIdentifier: Buffer.from(next.thumbprint, 'hex').toString('base64'), displayName: next.subject });
    expect(after.keyCredentials[1]?.keyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(s.state.servicePrincipal.keyCredentials.map((k) => k.key)).toEqual([s.currentS2S.derBase64, next.derBase64]);
  });

  it('updates servicePrincipalNames', async () => {
    const s = await setup();
    const client = s.client();
    const sp = await client.getCrmServicePrincipal();
    await client.setServicePrincipalNames(sp.id, [...sp.servicePrincipalNames, CRM_APP_ID]);
    expect(s.state.servicePrincipal.servicePrincipalNames).toEqual(['00000007-0000-0000-c000-000000000000/crm.contoso.com', CRM_APP_ID]);
    expect((await client.getCrmServicePrincipal()).servicePrincipalNames).toContain(CRM_APP_ID);
  });

  it('checks what it writes before sending it', async () => {
    const s = await setup();
    const client = s.client();
    const error = await failure(client.setKeyCredentials(s.state.servicePrincipal.id, [{ ...toInput(s.currentS2S), key: 'not base64!' }]));
    expect(error.code).toBe('GRAPH_REQUEST_FAILED');
    const badId = await failure(client.setServicePrincipalNames("x' or 1 eq 1", ['a']));
    expect(badId.code).toBe('GRAPH_REQUEST_FAILED');
    expect(s.sim.stats.byOperation['patch-service-principal']).toBeUndefined();
  });

  it('maps a Graph 400 from the PATCH (a 1024-bit key) to GRAPH_REQUEST_FAILED, not retried, with Graph\'s message', async () => {
    const s = await setup();
    const weak = makeCertificate({ commonName: 'weak', bits: 1024 });
    const error = await failure(s.client().setKeyCredentials(s.state.servicePrincipal.id, [toInput(weak)]));
    expect(error.code).toBe('GRAPH_REQUEST_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/400.*AADSTS700027/);
    expect(s.sleeps).toEqual([]);
  });
});

describe('graph client errors', () => {
  it('wrong client secret → GRAPH_AUTH_FAILED with the AADSTS code and a hint, never the secret', async () => {
    const s = await setup();
    const secret = 'Wr0ng~secret~value~1234567890';
    const error = await failure(s.client({ clientSecret: secret }).getTenantId());
    expect(error.code).toBe('GRAPH_AUTH_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/AADSTS7000215: Invalid client secret provided/);
    expect(error.message).not.toMatch(/Trace ID/);
    expect(error.hint).toMatch(/GRAPH_CLIENT_SECRET/);
    expect(JSON.stringify({ m: error.message, h: error.hint, d: error.details })).not.toContain(secret);
    expect(s.logs.join('')).not.toContain(secret);
    expect(s.sim.stats.byOperation['get-organization']).toBeUndefined();
  });

  it('unknown tenant → GRAPH_AUTH_FAILED naming GRAPH_TENANT_ID', async () => {
    const s = await setup();
    const error = await failure(s.client({ tenantId: '11111111-2222-3333-4444-555555555555' }).getTenantId());
    expect(error.code).toBe('GRAPH_AUTH_FAILED');
    expect(error.message).toContain('AADSTS90002');
    expect(error.hint).toMatch(/GRAPH_TENANT_ID/);
  });

  it('missing permission → GRAPH_FORBIDDEN with the permissions to grant', async () => {
    const s = await setup(['Organization.Read.All', 'User.Read']);
    const client = s.client();
    expect(await client.getTenantId()).toBe(s.state.tenant.id);
    const error = await failure(client.setServicePrincipalNames(s.state.servicePrincipal.id, [CRM_APP_ID]));
    expect(error.code).toBe('GRAPH_FORBIDDEN');
    expect(error.message).toContain('Authorization_RequestDenied');
    expect(error.hint).toMatch(/Application\.ReadWrite\.All.*Organization\.Read\.All.*admin consent/);
    expect(s.sleeps).toEqual([]);
  });

  it('429 with Retry-After is retried after the given time, then succeeds', async () => {
    const s = await setup();
    s.state.faults.push({ target: 'graph:get-organization', message: '429', times: 2 });
    expect(await s.client().getTenantId()).toBe(s.state.tenant.id);
    expect(s.sleeps).toEqual([1000, 1000]);
    expect(s.sim.stats.byOperation['get-organization']).toBe(3);
    expect(s.sim.stats.byStatus['429']).toBe(2);
  });

  it('503 is retried with backoff; the token endpoint too', async () => {
    const s = await setup();
    s.state.faults.push({ target: 'graph:token', message: '503', times: 1 }, { target: 'graph:get-service-principal', message: 'Replica unavailable', times: 2 });
    const sp = await s.client().getCrmServicePrincipal();
    expect(sp.id).toBe(s.state.servicePrincipal.id);
    expect(s.sim.stats.byOperation).toMatchObject({ token: 2, 'list-service-principals': 3, 'get-service-principal': 1 });
    expect(s.sleeps).toHaveLength(3);
    for (const ms of s.sleeps) expect(ms).toBeGreaterThan(0);
  });

  it('gives up after maxRetries with a retryable GRAPH_REQUEST_FAILED', async () => {
    const s = await setup();
    s.state.faults.push({ target: 'graph:patch-service-principal', message: '500', times: 10 });
    const error = await failure(s.client({ maxRetries: 2 }).setServicePrincipalNames(s.state.servicePrincipal.id, [CRM_APP_ID]));
    expect(error.code).toBe('GRAPH_REQUEST_FAILED');
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/500/);
    expect(s.sim.stats.byOperation['patch-service-principal']).toBe(3);
    expect(s.sleeps).toHaveLength(2);
  });

  it('a token endpoint that stays unavailable → retryable GRAPH_REQUEST_FAILED', async () => {
    const s = await setup();
    s.state.faults.push({ target: 'graph:token', message: '503', times: 10 });
    const error = await failure(s.client({ maxRetries: 1 }).getTenantId());
    expect(error.code).toBe('GRAPH_REQUEST_FAILED');
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/token endpoint answered HTTP 503/);
    expect(s.sim.stats.byOperation['token']).toBe(2);
  });

  it('asks the token endpoint again on the next call after it was unavailable (msal does not hold the failure)', async () => {
    const s = await setup();
    s.state.faults.push({ target: 'graph:token', message: '503', times: 2 });
    const client = s.client({ maxRetries: 1 });
    expect((await failure(client.getTenantId())).retryable).toBe(true);
    expect(await client.getTenantId()).toBe(s.state.tenant.id);
    expect(s.sim.stats.byOperation['token']).toBe(3);
  });

  it('refuses to talk to the simulator without its CA: a clear TLS error pointing at TLS_CA_FILE, no retries', async () => {
    const s = await setup();
    const client = createGraphClient({
      loginUrl: s.sim.loginUrl,
      graphUrl: s.sim.graphUrl,
      tenantId: s.state.tenant.id,
      clientId: s.state.app.clientId,
      clientSecret: s.state.app.clientSecret,
      logger: createLogger({ name: 'no-ca', level: 'silent' }),
      sleep: (ms) => {
        s.sleeps.push(ms);
        return Promise.resolve();
      },
    });
    clients.push(client);
    const error = await failure(client.getTenantId());
    expect(error.code).toBe('GRAPH_REQUEST_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/TLS certificate of 127\.0\.0\.1:\d+ is not trusted/);
    expect(error.hint).toMatch(/TLS_CA_FILE/);
    expect(s.sleeps).toEqual([]);
    expect(s.sim.stats.requests).toBe(0);
  });

  it('refuses a configuration without any credential and a certificate file without a key', async () => {
    const s = await setup();
    expect(() => createGraphClient({ loginUrl: s.sim.loginUrl, graphUrl: s.sim.graphUrl, tenantId: 't', clientId: 'c', logger: createLogger({ name: 'x', level: 'silent' }) })).toThrow(
      expect.objectContaining({ code: 'CONFIG_MISSING' }) as Error,
    );
    expect(() => s.client({ clientCertificatePem: s.appCertificate.certPem })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/no private key/) as string }) as Error);
    const other = makeCertificate({ commonName: 'other' });
    expect(() => s.client({ clientCertificatePem: `${s.appCertificate.certPem}${other.keyPem}` })).toThrow(expect.objectContaining({ message: expect.stringMatching(/does not belong/) as string }) as Error);
  });
});
