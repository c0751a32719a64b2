import { X509Certificate, createHash, randomUUID } from 'node:crypto';
import type { S2SState, SimKeyCredential, SimServicePrincipal } from './s2s-state.ts';

/**
 * The Microsoft Graph v1.0 subset the agent uses, over the simulated tenant: `/organization`,
 * `servicePrincipals` filtered by appId, one service principal with `$select`, and PATCH of
 * `keyCredentials` / `servicePrincipalNames`. Shapes and error codes follow Graph; `key` is only
 * returned when one object is read with `$select` naming keyCredentials, as Graph does.
 */

export interface GraphResponse {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

const JSON_HEADERS = { 'Content-Type': 'application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8', 'OData-Version': '4.0' };

export function graphError(status: number, code: string, message: string, headers: Record<string, string> = {}): GraphResponse {
  const requestId = randomUUID();
  return {
    status,
    headers: { ...JSON_HEADERS, 'request-id': requestId, ...headers },
    body: { error: { code, message, innerError: { date: new Date().toISOString().replace(/\.\d+Z$/, ''), 'request-id': requestId, 'client-request-id': requestId } } },
  };
}

function ok(body: unknown): GraphResponse {
  return { status: 200, headers: JSON_HEADERS, body };
}

const SP_PROPERTIES = ['id', 'appId', 'displayName', 'servicePrincipalNames', 'keyCredentials'] as const;
type SpProperty = (typeof SP_PROPERTIES)[number];

function parseSelect(value: string | null): SpProperty[] | GraphResponse {
  if (value === null) return [...SP_PROPERTIES];
  const names = value.split(',').map((n) => n.trim()).filter((n) => n.length > 0);
  for (const name of names) {
    if (!(SP_PROPERTIES as readonly string[]).includes(name)) {
      return graphError(400, 'Request_BadRequest', `Could not find a property named '${name}' on type 'microsoft.graph.servicePrincipal'.`);
    }
  }
  return names as SpProperty[];
}

function keyCredentialOut(credential: SimKeyCredential, withKey: boolean): Record<string, unknown> {
  return {
    customKeyIdentifier: credential.customKeyIdentifier,
    displayName: credential.displayName,
    endDateTime: credential.endDateTime,
    key: withKey ? credential.key : null,
    keyId: credential.keyId,
    startDateTime: credential.startDateTime,
    type: credential.type,
    usage: credential.usage,
  };
}

function project(sp: SimServicePrincipal, select: SpProperty[], withKey: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of select) {
    if (name === 'keyCredentials') out[name] = sp.keyCredentials.map((k) => keyCredentialOut(k, withKey));
    else if (name === 'servicePrincipalNames') out[name] = [...sp.servicePrincipalNames];
    else out[name] = sp[name];
  }
  return out;
}

export function getOrganization(state: S2SState, graphUrl: string): GraphResponse {
  return ok({
    '@odata.context': `${graphUrl}/v1.0/$metadata#organization`,
    value: [{
      id: state.tenant.id,
      displayName: state.tenant.displayName,
      verifiedDomains: [{ capabilities: 'Email, OfficeCommunicationsOnline', isDefault: true, isInitial: true, name: state.exchange.initialDomain, type: 'Managed' }],
    }],
  });
}

const APP_ID_FILTER = /^appId eq '([0-9a-fA-F-]{36})'$/;

/** GET servicePrincipals: only `$filter=appId eq '<guid>'` (and `$select`) is understood. */
export function listServicePrincipals(state: S2SState, query: URLSearchParams, graphUrl: string): GraphResponse {
  for (const name of query.keys()) {
    if (name !== '$filter' && name !== '$select') {
      return graphError(400, 'Request_BadRequest', `The simulator does not support the query option '${name}' on servicePrincipals.`);
    }
  }
  const filter = query.get('$filter');
  const match = filter === null ? null : APP_ID_FILTER.exec(filter.trim());
  if (!match?.[1]) {
    return graphError(400, 'Request_UnsupportedQuery', `Unsupported or invalid query filter clause specified: '${filter ?? ''}'. The simulator understands only $filter=appId eq '<guid>'.`);
  }
  const select = parseSelect(query.get('$select'));
  if (!Array.isArray(select)) return select;
  const sp = state.servicePrincipal;
  const value = sp.appId.toLowerCase() === match[1].toLowerCase() ? [project(sp, select, false)] : [];
  return ok({ '@odata.context': `${graphUrl}/v1.0/$metadata#servicePrincipals`, value });
}

/** GET servicePrincipals/{id}: `key` comes back only when `$select` names keyCredentials. */
export function getServicePrincipal(state: S2SState, id: string, query: URLSearchParams, graphUrl: string): GraphResponse {
  for (const name of query.keys()) {
    if (name !== '$select') return graphError(400, 'Request_BadRequest', `The simulator does not support the query option '${name}' on a service principal.`);
  }
  const sp = state.servicePrincipal;
  if (sp.id.toLowerCase() !== id.toLowerCase()) {
    return graphError(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
  }
  const selectParam = query.get('$select');
  const select = parseSelect(selectParam);
  if (!Array.isArray(select)) return select;
  const withKey = selectParam !== null && select.includes('keyCredentials');
  return ok({ '@odata.context': `${graphUrl}/v1.0/$metadata#servicePrincipals/$entity`, ...project(sp, select, withKey) });
}

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Graph tolerates a little clock difference between the given dates and the certificate's. */
const DATE_TOLERANCE_MS = 24 * 60 * 60 * 1000;

function invalidKeyCredential(property: string, detail: string): GraphResponse {
  return graphError(400, 'Request_BadRequest', `Invalid value specified for property '${property}' of resource 'KeyCredential'. ${detail}`.trim());
}

function optionalString(entry: Record<string, unknown>, name: string): string | null | undefined | false {
  const value = entry[name];
  if (value === undefined) return undefined;
  if (value === null) return null;
  return typeof value === 'string' ? value : false;
}

/** Validates one keyCredentials entry like Graph; returns the stored form or an error response. */
function toKeyCredential(entry: unknown, existing: Map<string, SimKeyCredential>): SimKeyCredential | GraphResponse {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return invalidKeyCredential('keyCredentials', 'Each entry must be an object.');
  const e = entry as Record<string, unknown>;
  for (const name of Object.keys(e)) {
    if (!['keyId', 'type', 'usage', 'key', 'displayName', 'startDateTime', 'endDateTime', 'customKeyIdentifier', '@odata.type'].includes(name)) {
      return graphError(400, 'Request_BadRequest', `Property '${name}' does not exist on type 'microsoft.graph.keyCredential'.`);
    }
  }
  if (e['type'] !== 'AsymmetricX509Cert') return invalidKeyCredential('type', "Only 'AsymmetricX509Cert' is supported for a service principal's certificate.");
  if (e['usage'] !== 'Verify') return invalidKeyCredential('usage', "Only 'Verify' is supported with type 'AsymmetricX509Cert'.");
  const key = e['key'];
  if (typeof key !== 'string' || key.length === 0 || !BASE64.test(key)) return invalidKeyCredential('key', 'The key must be the base64 DER of an X.509 certificate.');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(key, 'base64'));
  } catch {
    return invalidKeyCredential('key', 'The key is not a valid X.509 certificate.');
  }
  const publicKey = cert.publicKey;
  if (publicKey.asymmetricKeyType !== 'rsa') return invalidKeyCredential('key', 'AADSTS700027: the certificate key must be RSA.');
  const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) {
    return invalidKeyCredential('key', `AADSTS700027: Key size of the certificate is ${bits} bits; the minimum key size is 2048 bits.`);
  }
  const keyIdValue = optionalString(e, 'keyId');
  if (keyIdValue === false || (typeof keyIdValue === 'string' && !GUID.test(keyIdValue))) return invalidKeyCredential('keyId', 'The keyId must be a GUID.');
  const keyId = (typeof keyIdValue === 'string' ? keyIdValue : randomUUID()).toLowerCase();
  const before = existing.get(keyId);
  if (before && before.key !== key) return invalidKeyCredential('key', `The key of the existing credential '${keyId}' cannot be changed; add a new credential instead.`);

  const certStart = Date.parse(cert.validFrom);
  const certEnd = Date.parse(cert.validTo);
  const dates: Record<'startDateTime' | 'endDateTime', string> = { startDateTime: new Date(certStart).toISOString(), endDateTime: new Date(certEnd).toISOString() };
  for (const name of ['startDateTime', 'endDateTime'] as const) {
    const value = optionalString(e, name);
    if (value === false) return invalidKeyCredential(name, 'A date-time string is expected.');
    if (typeof value === 'string') {
      const at = Date.parse(value);
      if (!Number.isFinite(at)) return invalidKeyCredential(name, 'A date-time string is expected.');
      dates[name] = new Date(at).toISOString();
    }
  }
  const start = Date.parse(dates.startDateTime);
  const end = Date.parse(dates.endDateTime);
  if (end <= start) return invalidKeyCredential('endDateTime', 'The end date must be after the start date.');
  if (start < certStart - DATE_TOLERANCE_MS || end > certEnd + DATE_TOLERANCE_MS) {
    return invalidKeyCredential('endDateTime', "The key credential's dates must lie within the certificate's validity period.");
  }
  const displayName = optionalString(e, 'displayName');
  if (displayName === false) return invalidKeyCredential('displayName', 'A string is expected.');
  const customKeyIdentifier = optionalString(e, 'customKeyIdentifier');
  if (customKeyIdentifier === false || (typeof customKeyIdentifier === 'string' && !BASE64.test(customKeyIdentifier))) {
    return invalidKeyCredential('customKeyIdentifier', 'A base64 value is expected.');
  }
  return {
    keyId,
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    key,
    displayName: displayName ?? null,
    startDateTime: dates.startDateTime,
    endDateTime: dates.endDateTime,
    customKeyIdentifier: customKeyIdentifier ?? createHash('sha1').update(cert.raw).digest('base64'),
  };
}

export interface PatchOptions {
  /** The PATCH is accepted but new credentials are dropped (S2SBreakage.keyCredentialDropped). */
  dropNewKeyCredentials: boolean;
}

/** PATCH servicePrincipals/{id} with `keyCredentials` (replaces the whole list) and/or `servicePrincipalNames`. */
export function patchServicePrincipal(state: S2SState, id: string, body: unknown, options: PatchOptions): GraphResponse {
  const sp = state.servicePrincipal;
  if (sp.id.toLowerCase() !== id.toLowerCase()) {
    return graphError(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return graphError(400, 'BadRequest', 'The request body must be a JSON object.');
  const b = body as Record<string, unknown>;
  for (const name of Object.keys(b)) {
    if (name !== 'keyCredentials' && name !== 'servicePrincipalNames') {
      return graphError(400, 'Request_BadRequest', `The simulator does not support updating the property '${name}' of a service principal.`);
    }
  }
  let keyCredentials: SimKeyCredential[] | undefined;
  if (b['keyCredentials'] !== undefined) {
    if (!Array.isArray(b['keyCredentials'])) return invalidKeyCredential('keyCredentials', 'An array is expected.');
    const existing = new Map(sp.keyCredentials.map((k) => [k.keyId.toLowerCase(), k] as const));
    keyCredentials = [];
    const seen = new Set<string>();
    for (const entry of b['keyCredentials'] as unknown[]) {
      const credential = toKeyCredential(entry, existing);
      if ('status' in credential) return credential;
      if (seen.has(credential.keyId)) return invalidKeyCredential('keyId', `The keyId '${credential.keyId}' appears twice.`);
      seen.add(credential.keyId);
      keyCredentials.push(credential);
    }
    if (options.dropNewKeyCredentials) keyCredentials = keyCredentials.filter((k) => existing.has(k.keyId));
  }
  let names: string[] | undefined;
  if (b['servicePrincipalNames'] !== undefined) {
    const value = b['servicePrincipalNames'];
    if (!Array.isArray(value) || value.some((n) => typeof n !== 'string' || n.length === 0 || n.length > 400)) {
      return graphError(400, 'Request_BadRequest', "Invalid value specified for property 'servicePrincipalNames' of resource 'ServicePrincipal'.");
    }
    names = [...new Set(value as string[])];
  }
  if (keyCredentials) sp.keyCredentials = keyCredentials;
  if (names) sp.servicePrincipalNames = names;
  return { status: 204, headers: { 'request-id': randomUUID() } };
}
