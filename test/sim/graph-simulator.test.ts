import { createHash, randomUUID, sign, constants } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { Agent, fetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { faultStatus, startGraphSimulator, type GraphSimulator } from '../../sim/graph-simulator.ts';
import type { S2SState } from '../../sim/s2s-state.ts';
import { buildGraphTestState, keyCredentialOf, makeCertificate, type TestCertificate } from './graph-state-builder.ts';

let sim: GraphSimulator | undefined;
let agent: Agent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  await sim?.close();
  sim = undefined;
});

interface Setup {
  sim: GraphSimulator;
  state: S2SState;
  appCertificate: TestCertificate;
  currentS2S: TestCertificate;
}

async function setup(permissions?: string[]): Promise<Setup> {
  const built = buildGraphTestState(permissions === undefined ? {} : { permissions });
  sim = await startGraphSimulator({ s2s: built.state });
  agent = new Agent({ connect: { ca: [...rootCertificates, sim.caPem] } });
  return { sim, ...built };
}

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | undefined;
}

async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  if (!agent) throw new Error('setup() first');
  const response = await fetch(url, { method: init.method ?? 'GET', headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }), dispatcher: agent });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text.length > 0 ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

function tokenUrl(s: Setup, tenant = s.state.tenant.id): string {
  return `${s.sim.loginUrl}/${tenant}/oauth2/v2.0/token`;
}

async function requestToken(s: Setup, fields: Record<string, string>, tenant?: string): Promise<Reply> {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: s.state.app.clientId, scope: `${s.sim.graphUrl}/.default`, ...fields });
  return call(tokenUrl(s, tenant), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString() });
}

async function token(s: Setup): Promise<string> {
  const reply = await requestToken(s, { client_secret: s.state.app.clientSecret });
  expect(reply.status).toBe(200);
  return String(reply.body?.['access_token']);
}

/** A client assertion like msal-node makes (PS256, x5t#S256). */
function assertion(cert: TestCertificate, claims: Record<string, unknown>): string {
  const der = Buffer.from(cert.derBase64, 'base64');
  const header = { alg: 'PS256', typ: 'JWT', 'x5t#S256': createHash('sha256').update(der).digest('base64url') };
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode(header)}.${encode(claims)}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key: cert.keyPem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
  return `${signingInput}.${signature.toString('base64url')}`;
}

function assertionClaims(s: Setup, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { aud: tokenUrl(s), iss: s.state.app.clientId, sub: s.state.app.clientId, exp: now + 600, nbf: now, jti: randomUUID(), ...overrides };
}

function errorCode(reply: Reply): unknown {
  return (reply.body?.['error'] as Record<string, unknown> | undefined)?.['code'];
}

describe('graph simulator: TLS', () => {
  it('serves HTTPS with a certificate from its own CA and writes the CA to caFile', async () => {
    const s = await setup();
    expect(await readFile(s.sim.caFile, 'utf8')).toBe(s.sim.caPem);
    expect(s.sim.loginUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(s.sim.graphUrl).toBe(`${s.sim.loginUrl}/graph`);
    const reply = await call(`${s.sim.loginUrl}/${s.state.tenant.id}/v2.0/.well-known/openid-configuration`);
    expect(reply.body?.['token_endpoint']).toBe(tokenUrl(s));
    // Without the CA the connection is refused by certificate verification.
    const error: unknown = await fetch(`${s.sim.graphUrl}/v1.0/organization`).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error & { cause?: { code?: string } }).cause?.code)).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
  });

  it('removes its temporary folder on close', async () => {
    const s = await setup();
    const file = s.sim.caFile;
    await s.sim.close();
    sim = undefined;
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
  });
});

describe('graph simulator: token endpoint', () => {
  it('issues a token for the right client secret and refuses a wrong one like Entra (AADSTS7000215)', async () => {
    const s = await setup();
    const good = await requestToken(s, { client_secret: s.state.app.clientSecret });
    expect(good.status).toBe(200);
    expect(good.body).toMatchObject({ token_type: 'Bearer', expires_in: 3599 });
    const bad = await requestToken(s, { client_secret: 'not-the-secret' });
    expect(bad.status).toBe(401);
    expect(bad.body?.['error']).toBe('invalid_client');
    expect(bad.body?.['error_codes']).toEqual([7000215]);
    expect(String(bad.body?.['error_description'])).toMatch(/^AADSTS7000215: Invalid client secret provided/);
    expect(JSON.stringify(bad.body)).not.toContain(s.state.app.clientSecret);
  });

  it('answers an unknown tenant with AADSTS90002, an unknown client with AADSTS700016 and a foreign scope with 400', async () => {
    const s = await setup();
    const tenant = await requestToken(s, { client_secret: s.state.app.clientSecret }, randomUUID());
    expect(tenant.status).toBe(400);
    expect(String(tenant.body?.['error_description'])).toMatch(/^AADSTS90002: Tenant '.+' not found/);
    const client = await requestToken(s, { client_secret: s.state.app.clientSecret, client_id: randomUUID() });
    expect(client.status).toBe(400);
    expect(client.body?.['error_codes']).toEqual([700016]);
    const scope = await requestToken(s, { client_secret: s.state.app.clientSecret, scope: 'https://graph.microsoft.com/.default' });
    expect(scope.status).toBe(400);
    expect(scope.body?.['error']).toBe('invalid_scope');
  });

  it('accepts a client assertion signed with a registered certificate and checks signature, certificate and audience', async () => {
    const s = await setup();
    const type = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
    const good = await requestToken(s, { client_assertion_type: type, client_assertion: assertion(s.appCertificate, assertionClaims(s)) });
    expect(good.status).toBe(200);

    const stranger = makeCertificate({ commonName: 'not-registered' });
    const unknown = await requestToken(s, { client_assertion_type: type, client_assertion: assertion(stranger, assertionClaims(s)) });
    expect(unknown.status).toBe(401);
    expect(String(unknown.body?.['error_description'])).toMatch(/^AADSTS700027: The certificate with identifier used to sign the client assertion is not registered/);

    // Registered certificate named in the header, but signed with another key.
    const forged = assertion({ ...stranger, derBase64: s.appCertificate.derBase64 }, assertionClaims(s));
    const badSignature = await requestToken(s, { client_assertion_type: type, client_assertion: forged });
    expect(badSignature.status).toBe(401);
    expect(badSignature.body?.['error_codes']).toEqual([7000274]);

    const wrongAudience = await requestToken(s, { client_assertion_type: type, client_assertion: assertion(s.appCertificate, assertionClaims(s, { aud: 'https://elsewhere/token' })) });
    expect(wrongAudience.status).toBe(401);
    const expired = await requestToken(s, { client_assertion_type: type, client_assertion: assertion(s.appCertificate, assertionClaims(s, { exp: Math.floor(Date.now() / 1000) - 10 })) });
    expect(expired.status).toBe(401);
    expect(expired.body?.['error_codes']).toEqual([700024]);
  });
});

describe('graph simulator: Graph calls', () => {
  it('checks the bearer token: none, unknown, good', async () => {
    const s = await setup();
    const none = await call(`${s.sim.graphUrl}/v1.0/organization`);
    expect(none.status).toBe(401);
    expect(errorCode(none)).toBe('InvalidAuthenticationToken');
    const unknown = await call(`${s.sim.graphUrl}/v1.0/organization`, { headers: { Authorization: 'Bearer made-up' } });
    expect(unknown.status).toBe(401);
    const good = await call(`${s.sim.graphUrl}/v1.0/organization`, { headers: { Authorization: `Bearer ${await token(s)}` } });
    expect(good.status).toBe(200);
    expect((good.body?.['value'] as { id: string }[])[0]?.id).toBe(s.state.tenant.id);
  });

  it('lists by appId only, without keys; the single read returns keys only with $select=keyCredentials', async () => {
    const s = await setup();
    const auth = { Authorization: `Bearer ${await token(s)}` };
    const filter = encodeURIComponent("appId eq '00000007-0000-0000-c000-000000000000'");
    const list = await call(`${s.sim.graphUrl}/v1.0/servicePrincipals?$filter=${filter}`, { headers: auth });
    expect(list.status).toBe(200);
    const listed = (list.body?.['value'] as Record<string, unknown>[])[0];
    expect(listed?.['id']).toBe(s.state.servicePrincipal.id);
    expect((listed?.['keyCredentials'] as Record<string, unknown>[])[0]?.['key']).toBeNull();

    const other = await call(`${s.sim.graphUrl}/v1.0/servicePrincipals?$filter=${encodeURIComponent("displayName eq 'x'")}`, { headers: auth });
    expect(other.status).toBe(400);
    const top = await call(`${s.sim.graphUrl}/v1.0/servicePrincipals?$filter=${filter}&$top=5`, { headers: auth });
    expect(top.status).toBe(400);

    const spUrl = `${s.sim.graphUrl}/v1.0/servicePrincipals/${s.state.servicePrincipal.id}`;
    const selected = await call(`${spUrl}?$select=id,appId,servicePrincipalNames,keyCredentials`, { headers: auth });
    expect(selected.status).toBe(200);
    expect(Object.keys(selected.body ?? {}).filter((k) => !k.startsWith('@'))).toEqual(['id', 'appId', 'servicePrincipalNames', 'keyCredentials']);
    expect((selected.body?.['keyCredentials'] as Record<string, unknown>[])[0]?.['key']).toBe(s.currentS2S.derBase64);
    const plain = await call(spUrl, { headers: auth });
    expect((plain.body?.['keyCredentials'] as Record<string, unknown>[])[0]?.['key']).toBeNull();
    const missing = await call(`${s.sim.graphUrl}/v1.0/servicePrincipals/${randomUUID()}`, { headers: auth });
    expect(missing.status).toBe(404);
  });

  it('PATCH replaces keyCredentials, sets keyId and customKeyIdentifier of a new one, and validates like Graph', async () => {
    const s = await setup();
    const auth = { Authorization: `Bearer ${await token(s)}`, 'Content-Type': 'application/json' };
    const spUrl = `${s.sim.graphUrl}/v1.0/servicePrincipals/${s.state.servicePrincipal.id}`;
    const existing = s.state.servicePrincipal.keyCredentials[0];
    const next = makeCertificate({ commonName: 'crm-s2s-2.contoso.com', days: 400 });
    const fresh = { type: 'AsymmetricX509Cert', usage: 'Verify', key: next.derBase64, displayName: next.subject, startDateTime: next.notBefore, endDateTime: next.notAfter };
    const patch = (keyCredentials: unknown[]) => call(spUrl, { method: 'PATCH', headers: auth, body: JSON.stringify({ keyCredentials }) });

    const noKey = await patch([{ ...existing, key: undefined }, fresh]);
    expect(noKey.status).toBe(400);
    const notCert = await patch([fresh, { ...fresh, key: Buffer.from('hello').toString('base64') }]);
    expect(notCert.status).toBe(400);
    const small = makeCertificate({ commonName: 'weak', bits: 1024 });
    const weak = await patch([{ ...fresh, key: small.derBase64, startDateTime: small.notBefore, endDateTime: small.notAfter }]);
    expect(weak.status).toBe(400);
    expect(String((weak.body?.['error'] as Record<string, unknown>)['message'])).toMatch(/AADSTS700027.*1024 bits.*2048/);
    const wrongType = await patch([{ ...fresh, type: 'Symmetric' }]);
    expect(wrongType.status).toBe(400);
    const beyond = await patch([{ ...fresh, endDateTime: new Date(Date.parse(next.notAfter) + 30 * 86_400_000).toISOString() }]);
    expect(beyond.status).toBe(400);
    expect(s.state.servicePrincipal.keyCredentials).toHaveLength(1);

    const done = await patch([existing, fresh]);
    expect(done.status).toBe(204);
    const credentials = s.state.servicePrincipal.keyCredentials;
    expect(credentials).toHaveLength(2);
    expect(credentials[0]).toEqual(existing);
    expect(credentials[1]?.keyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(credentials[1]?.keyId).not.toBe(existing?.keyId);
    expect(credentials[1]?.customKeyIdentifier).toBe(Buffer.from(next.thumbprint, 'hex').toString('base64'));

    const names = await call(spUrl, { method: 'PATCH', headers: auth, body: JSON.stringify({ servicePrincipalNames: ['00000007-0000-0000-c000-000000000000', 'x/y'] }) });
    expect(names.status).toBe(204);
    expect(s.state.servicePrincipal.servicePrincipalNames).toEqual(['00000007-0000-0000-c000-000000000000', 'x/y']);
    const other = await call(spUrl, { method: 'PATCH', headers: auth, body: JSON.stringify({ displayName: 'renamed' }) });
    expect(other.status).toBe(400);
  });

  it('refuses the PATCH without Application.ReadWrite.All and /organization without Organization.Read.All (403 Authorization_RequestDenied)', async () => {
    const s = await setup(['User.Read']);
    const auth = { Authorization: `Bearer ${await token(s)}`, 'Content-Type': 'application/json' };
    const org = await call(`${s.sim.graphUrl}/v1.0/organization`, { headers: auth });
    expect(org.status).toBe(403);
    expect(errorCode(org)).toBe('Authorization_RequestDenied');
    const patch = await call(`${s.sim.graphUrl}/v1.0/servicePrincipals/${s.state.servicePrincipal.id}`, { method: 'PATCH', headers: auth, body: JSON.stringify({ servicePrincipalNames: ['a'] }) });
    expect(patch.status).toBe(403);
    s.state.app.permissions = ['Organization.Read.All', 'Application.ReadWrite.All'];
    expect((await call(`${s.sim.graphUrl}/v1.0/organization`, { headers: auth })).status).toBe(200);
  });

  it('drops the new key credential but answers 204 with keyCredentialDropped', async () => {
    const s = await setup();
    s.state.breakage.keyCredentialDropped = true;
    const auth = { Authorization: `Bearer ${await token(s)}`, 'Content-Type': 'application/json' };
    const next = makeCertificate({ commonName: 'dropped' });
    const existing = s.state.servicePrincipal.keyCredentials[0];
    const reply = await call(`${s.sim.graphUrl}/v1.0/servicePrincipals/${s.state.servicePrincipal.id}`, {
      method: 'PATCH',
      headers: auth,
      body: JSON.stringify({ keyCredentials: [existing, { ...keyCredentialOf(next), keyId: undefined }] }),
    });
    expect(reply.status).toBe(204);
    expect(s.state.servicePrincipal.keyCredentials).toEqual([existing]);
  });
});

describe('graph simulator: faults and stats', () => {
  it('maps fault messages to statuses: 429 with Retry-After, a given status, otherwise 503', async () => {
    expect(faultStatus('429')).toBe(429);
    expect(faultStatus('500')).toBe(500);
    expect(faultStatus('Service is down')).toBe(503);
    expect(faultStatus('200')).toBe(503);
    const s = await setup();
    const auth = { Authorization: `Bearer ${await token(s)}` };
    s.state.faults.push({ target: 'graph:get-organization', message: '429', times: 1 }, { target: 'graph:get-service-principal', message: 'Replica unavailable', times: 1 });
    const throttled = await call(`${s.sim.graphUrl}/v1.0/organization`, { headers: auth });
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('1');
    expect((await call(`${s.sim.graphUrl}/v1.0/organization`, { headers: auth })).status).toBe(200);
    const down = await call(`${s.sim.graphUrl}/v1.0/servicePrincipals/${s.state.servicePrincipal.id}`, { headers: auth });
    expect(down.status).toBe(503);
    expect((down.body?.['error'] as Record<string, unknown>)['message']).toBe('Replica unavailable');
    expect(s.state.faults).toEqual([]);

    s.state.faults.push({ target: 'graph:token', message: '500', times: 1 });
    const tokenFault = await requestToken(s, { client_secret: s.state.app.clientSecret });
    expect(tokenFault.status).toBe(500);
    expect(String(tokenFault.body?.['error_description'])).toMatch(/^AADSTS\d+:/);
    expect(s.sim.stats.byOperation).toMatchObject({ token: 2, 'get-organization': 2, 'get-service-principal': 1 });
    expect(s.sim.stats.byStatus).toMatchObject({ '200': 2, '429': 1, '503': 1, '500': 1 });
    s.sim.resetStats();
    expect(s.sim.stats.requests).toBe(0);
  });

  it('does not use up a fault on an unauthenticated request', async () => {
    const s = await setup();
    s.state.faults.push({ target: 'graph:get-organization', message: '503', times: 1 });
    expect((await call(`${s.sim.graphUrl}/v1.0/organization`)).status).toBe(401);
    expect(s.state.faults).toHaveLength(1);
  });
});
