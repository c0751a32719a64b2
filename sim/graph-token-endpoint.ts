import { X509Certificate, constants, createHash, randomBytes, randomUUID, timingSafeEqual, verify } from 'node:crypto';
import type { S2SState } from './s2s-state.ts';

/**
 * The Entra ID v2.0 token endpoint for the client-credentials grant, as msal-node calls it:
 * `POST /{tenant}/oauth2/v2.0/token` with `client_secret`, or with a `client_assertion` (a JWT
 * signed with a certificate of the app, identified by `x5t#S256` or `x5t`). Errors look like
 * Entra's (`error`, `error_description` starting with the AADSTS code, `error_codes`).
 */

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const TOKEN_LIFETIME_SECONDS = 3599;

/** What the simulator remembers about an access token it issued (the bearer check looks the token up). */
export interface IssuedToken {
  tenantId: string;
  clientId: string;
  /** ms since epoch. */
  expiresAt: number;
  /** The application permissions granted when the token was issued (its `roles` claim). */
  roles: string[];
}

/**
 * An access token shaped like Entra's app-only tokens: base64url header.payload.signature, the
 * payload with aud, iss, tid, appid, idtyp 'app', roles (the app's granted Graph application
 * permissions at issue time; left out when none, as Entra does), iat, nbf, exp. Clients may read the
 * claims (the agent reads `roles`); the signature is random bytes: only the simulator that issued
 * the token accepts it (its bearer check looks the token up), as only Graph validates Graph tokens.
 */
export function appOnlyAccessToken(options: { state: S2SState; audience: string; now: number; expiresAt: number }): string {
  const { state, now, expiresAt } = options;
  const seconds = (ms: number): number => Math.floor(ms / 1000);
  const header = { typ: 'JWT', alg: 'RS256', x5t: randomBytes(20).toString('base64url'), kid: randomBytes(20).toString('base64url') };
  const payload: Record<string, unknown> = {
    aud: options.audience,
    iss: `https://sts.windows.net/${state.tenant.id}/`,
    iat: seconds(now),
    nbf: seconds(now),
    exp: seconds(expiresAt),
    app_displayname: 'CRM server-side sync setup',
    appid: state.app.clientId,
    appidacr: '1',
    idp: `https://sts.windows.net/${state.tenant.id}/`,
    idtyp: 'app',
    oid: randomUUID(),
    sub: state.app.clientId,
    tid: state.tenant.id,
    uti: randomBytes(16).toString('base64url'),
    ver: '1.0',
  };
  if (state.app.permissions.length > 0) payload.roles = [...state.app.permissions];
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(payload)}.${randomBytes(256).toString('base64url')}`;
}

export interface TokenResponse {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

export interface TokenRequest {
  state: S2SState;
  /** The `{tenant}` path segment. */
  tenant: string;
  form: URLSearchParams;
  /** The absolute URL of this token endpoint (a client assertion's `aud`). */
  tokenEndpoint: string;
  /** The Graph base URL the simulator serves (`<graphUrl>/.default` is the only scope). */
  graphUrl: string;
  now: number;
  issue(token: string, record: IssuedToken): void;
}

function entraError(status: number, error: string, code: number, description: string, now: number): TokenResponse {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date(now).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  return {
    status,
    headers: { 'Content-Type': 'application/json; charset=utf-8' },
    body: {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    },
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function base64UrlJson(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The app certificate a JWT header names (x5t#S256 = SHA-256 of the DER, x5t = SHA-1), if the app has it. */
function findAppCertificate(state: S2SState, header: Record<string, unknown>): X509Certificate | undefined {
  const x5tS256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
  const x5t = typeof header['x5t'] === 'string' ? header['x5t'] : undefined;
  for (const pem of state.app.certificates) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      continue;
    }
    if (x5tS256 !== undefined && createHash('sha256').update(cert.raw).digest('base64url') === x5tS256) return cert;
    if (x5t !== undefined && createHash('sha1').update(cert.raw).digest('base64url') === x5t) return cert;
  }
  return undefined;
}

/** Checks a client assertion; returns an Entra error or undefined when it is good. */
function checkAssertion(request: TokenRequest, assertion: string): TokenResponse | undefined {
  const { state, now } = request;
  const clientId = state.app.clientId;
  const parts = assertion.split('.');
  const [headerPart, payloadPart, signaturePart] = parts;
  if (parts.length !== 3 || headerPart === undefined || payloadPart === undefined || signaturePart === undefined) {
    return entraError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.', now);
  }
  const header = base64UrlJson(headerPart);
  const payload = base64UrlJson(payloadPart);
  if (!isRecord(header) || !isRecord(payload)) return entraError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.', now);
  const alg = header['alg'];
  if (alg !== 'PS256' && alg !== 'RS256') {
    return entraError(401, 'invalid_client', 5002738, `Invalid JWT token. '${String(alg)}' is not a supported signature algorithm.`, now);
  }
  const cert = findAppCertificate(state, header);
  if (!cert) {
    const named = [header['x5t#S256'], header['x5t']].find((v): v is string => typeof v === 'string') ?? '';
    return entraError(
      401,
      'invalid_client',
      700027,
      `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${named}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${clientId}'.]`,
      now,
    );
  }
  const signed = Buffer.from(`${headerPart}.${payloadPart}`);
  const signature = Buffer.from(signaturePart, 'base64url');
  const key = alg === 'PS256' ? { key: cert.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO } : cert.publicKey;
  if (!verify('sha256', signed, key, signature)) {
    return entraError(401, 'invalid_client', 7000274, 'Key was found, but use of the key to verify the signature failed.', now);
  }
  if (payload['aud'] !== request.tokenEndpoint) {
    return entraError(401, 'invalid_client', 700212, `No matching federated identity record found for presented assertion audience '${String(payload['aud'])}'.`, now);
  }
  if (payload['iss'] !== clientId || payload['sub'] !== clientId) {
    return entraError(401, 'invalid_client', 700023, 'Client assertion audience claim does not match Realm issuer / subject and issuer must be the client id.', now);
  }
  const exp = typeof payload['exp'] === 'number' ? payload['exp'] * 1000 : 0;
  const nbf = typeof payload['nbf'] === 'number' ? payload['nbf'] * 1000 : 0;
  if (exp <= now) return entraError(401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.', now);
  if (nbf > now + 5 * 60 * 1000) return entraError(401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.', now);
  const notAfter = Date.parse(cert.validTo);
  if (Number.isFinite(notAfter) && notAfter <= now) {
    return entraError(401, 'invalid_client', 700027, 'Client assertion failed signature validation: the certificate used to sign it has expired.', now);
  }
  return undefined;
}

/** One token request → one response (200 with an access token, or an Entra error). */
export function handleTokenRequest(request: TokenRequest): TokenResponse {
  const { state, form, now, tenant } = request;
  if (tenant.toLowerCase() !== state.tenant.id.toLowerCase()) {
    return entraError(
      400,
      'invalid_request',
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
      now,
    );
  }
  const grantType = form.get('grant_type');
  if (grantType !== 'client_credentials') {
    return entraError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType ?? ''}'.`, now);
  }
  const clientId = form.get('client_id') ?? '';
  if (clientId.toLowerCase() !== state.app.clientId.toLowerCase()) {
    return entraError(
      400,
      'unauthorized_client',
      700016,
      `Application with identifier '${clientId}' was not found in the directory '${state.tenant.displayName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      now,
    );
  }
  const scopes = (form.get('scope') ?? '').split(' ').filter((s) => s.length > 0);
  const graphScope = `${request.graphUrl}/.default`;
  if (!scopes.includes(graphScope)) {
    return entraError(400, 'invalid_scope', 1002012, `The provided value for scope ${scopes.join(' ')} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI); this tenant serves ${graphScope}.`, now);
  }
  const secret = form.get('client_secret');
  const assertion = form.get('client_assertion');
  if (secret !== null) {
    if (!sameSecret(secret, state.app.clientSecret)) {
      return entraError(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${state.app.clientId}'.`,
        now,
      );
    }
  } else if (assertion !== null) {
    if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) {
      return entraError(400, 'invalid_request', 50027, `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}.`, now);
    }
    const failure = checkAssertion(request, assertion);
    if (failure) return failure;
  } else {
    return entraError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", now);
  }
  const expiresAt = now + TOKEN_LIFETIME_SECONDS * 1000;
  const token = appOnlyAccessToken({ state, audience: request.graphUrl, now, expiresAt });
  request.issue(token, { tenantId: state.tenant.id, clientId: state.app.clientId, expiresAt, roles: [...state.app.permissions] });
  return {
    status: 200,
    headers: { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store, no-cache' },
    body: { token_type: 'Bearer', expires_in: TOKEN_LIFETIME_SECONDS, ext_expires_in: TOKEN_LIFETIME_SECONDS, access_token: token },
  };
}

/** An Entra-style error for an injected fault on the token endpoint. */
export function tokenFaultResponse(status: number, message: string, now: number): TokenResponse {
  const response = entraError(status, status === 429 ? 'temporarily_unavailable' : 'service_unavailable', status === 429 ? 50196 : 90033, message, now);
  if (status === 429) response.headers['Retry-After'] = '1';
  return response;
}
