import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger, type Logger } from '../core/logger.ts';
import { getOrganization, getServicePrincipal, graphError, listServicePrincipals, patchServicePrincipal, type GraphResponse } from './graph-directory.ts';
import { handleTokenRequest, tokenFaultResponse, type IssuedToken } from './graph-token-endpoint.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { countChange, takeFault, type S2SState } from './s2s-state.ts';
import { createTlsMaterial } from './tls-authority.ts';

/**
 * Entra ID's token endpoint and the Microsoft Graph subset the agent uses, on ONE HTTPS server
 * with a certificate from a CA made at start. The agent reaches it only through its ordinary
 * configuration: GRAPH_LOGIN_URL = loginUrl, GRAPH_URL = graphUrl, TLS_CA_FILE = caFile.
 *
 * Routes: `GET /{tenant}/v2.0/.well-known/openid-configuration`, `POST /{tenant}/oauth2/v2.0/token`,
 * `GET /graph/v1.0/organization`, `GET /graph/v1.0/servicePrincipals?$filter=appId eq '<guid>'`,
 * `GET|PATCH /graph/v1.0/servicePrincipals/{id}`.
 *
 * Fault injection (`takeFault(state, target)`, targets `graph:token`, `graph:get-organization`,
 * `graph:get-service-principal` (the list and the single read), `graph:patch-service-principal`):
 * a fault whose message is a status code 400-599 answers that status ('429' with `Retry-After: 1`,
 * '403' Authorization_RequestDenied); any other message answers 503 with that message; a fault with
 * `hangMs` lets the call run and answers late. Faults are taken after the bearer token check, so an
 * unauthenticated request never uses one up. Access tokens are JWT-shaped (graph-token-endpoint.ts).
 */
export interface GraphSimulatorOptions {
  /** Shared with the CRM simulator (PowerShell stand-in). */
  s2s: S2SState;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0 = a random free port. */
  port?: number;
  /** Default silent. */
  logger?: Logger;
  /** Where the CA certificate is written (default: a new temporary folder, removed on close). */
  tlsDir?: string;
}

/** Requests by operation: token, openid-configuration, get-organization, list-service-principals, get-service-principal, patch-service-principal, other. */
export interface GraphSimulatorStats {
  requests: number;
  byOperation: Record<string, number>;
  /** Responses by status code. */
  byStatus: Record<string, number>;
}

export interface GraphSimulator {
  /** https://<host>:<port> (the authority host; authority = `${loginUrl}/${tenantId}`). */
  readonly loginUrl: string;
  /** https://<host>:<port>/graph */
  readonly graphUrl: string;
  /** The CA that signed the server certificate (PEM). */
  readonly caPem: string;
  /** The CA written to a file, for TLS_CA_FILE. */
  readonly caFile: string;
  readonly stats: GraphSimulatorStats;
  resetStats(): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, response: GraphResponse): void {
  res.writeHead(response.status, response.headers);
  res.end(response.body === undefined ? undefined : JSON.stringify(response.body));
}

/** The fault convention: a 400-599 status code as the message answers that status, anything else 503. */
export function faultStatus(message: string): number {
  const code = /^\s*(\d{3})\s*$/.exec(message)?.[1];
  const status = code === undefined ? 503 : Number(code);
  return status >= 400 && status <= 599 ? status : 503;
}

/** Graph's error code and message for a status code given as a fault message. */
const graphStatusErrors: Record<number, [string, string]> = {
  401: ['InvalidAuthenticationToken', 'Access token validation failure.'],
  403: ['Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'],
  404: ['Request_ResourceNotFound', 'Resource does not exist or one of its queried reference-property objects are not present.'],
};

function graphFault(message: string): GraphResponse {
  const status = faultStatus(message);
  if (status === 429) {
    return graphError(429, 'TooManyRequests', 'Too many requests. Please retry after the time given in the Retry-After header.', { 'Retry-After': '1' });
  }
  const known = graphStatusErrors[status];
  const code = known?.[0] ?? (status === 503 ? 'ServiceUnavailable' : status >= 500 ? 'InternalServerError' : 'BadRequest');
  const isStatus = /^\s*\d{3}\s*$/.test(message);
  return graphError(status, code, isStatus ? (known?.[1] ?? `Injected fault: HTTP ${status}.`) : message);
}

const TENANT_SEGMENT = '([A-Za-z0-9.-]{1,100})';
const TOKEN_PATH = new RegExp(`^/${TENANT_SEGMENT}/oauth2/v2\\.0/token$`);
const OPENID_PATH = new RegExp(`^/${TENANT_SEGMENT}/v2\\.0/\\.well-known/openid-configuration$`);
const SP_PATH = /^\/graph\/v1\.0\/servicePrincipals\/([^/]{1,64})$/;

export async function startGraphSimulator(options: GraphSimulatorOptions): Promise<GraphSimulator> {
  const { s2s } = options;
  const host = options.host ?? '127.0.0.1';
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const logger = (options.logger ?? silentLogger()).child({ component: 'graph-simulator' });
  const tls = createTlsMaterial({ hosts: [...new Set([urlHost, '127.0.0.1', 'localhost'])], caName: 'Setup Graph Simulator CA' });
  const ownDir = options.tlsDir === undefined;
  const tlsDir = options.tlsDir ?? (await mkdtemp(path.join(tmpdir(), 'graph-sim-')));
  const caFile = path.join(tlsDir, GRAPH_SIM_CA_FILE_NAME);
  await writeFile(caFile, tls.caPem, { mode: 0o644 });

  const tokens = new Map<string, IssuedToken>();
  const stats: GraphSimulatorStats = { requests: 0, byOperation: {}, byStatus: {} };
  let origin = '';
  let graphUrl = '';

  /** A `hangMs` fault's delay; cut short when the simulator closes. */
  const closing = new AbortController();
  const hang = async (ms: number): Promise<void> => {
    await sleep(ms, undefined, { signal: closing.signal }).catch(() => undefined);
  };
  const count = (operation: string): void => {
    stats.requests += 1;
    stats.byOperation[operation] = (stats.byOperation[operation] ?? 0) + 1;
  };

  /** The bearer token check of every Graph call; undefined when the token is good. */
  const checkBearer = (req: IncomingMessage, now: number): GraphResponse | undefined => {
    const auth = req.headers.authorization ?? '';
    const match = /^Bearer (\S+)$/i.exec(auth);
    if (!match?.[1]) return graphError(401, 'InvalidAuthenticationToken', 'Access token is empty.', { 'WWW-Authenticate': 'Bearer realm=""' });
    const issued = tokens.get(match[1]);
    if (!issued) return graphError(401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience or signature.');
    if (issued.expiresAt <= now) {
      tokens.delete(match[1]);
      return graphError(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    }
    if (issued.tenantId !== s2s.tenant.id || issued.clientId !== s2s.app.clientId) {
      return graphError(401, 'InvalidAuthenticationToken', 'Access token validation failure: the token was issued for another tenant or application.');
    }
    return undefined;
  };

  const requirePermission = (permission: string, alternatives: string[] = []): GraphResponse | undefined => {
    const granted = s2s.app.permissions;
    if (granted.includes(permission) || alternatives.some((p) => granted.includes(p))) return undefined;
    return graphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
  };

  async function handleToken(req: IncomingMessage, tenant: string, now: number): Promise<GraphResponse> {
    const fault = takeFault(s2s, 'graph:token');
    if (fault?.message !== undefined && fault.hangMs === undefined) return tokenFaultResponse(faultStatus(fault.message), fault.message, now);
    if (fault?.hangMs !== undefined) await hang(fault.hangMs);
    const type = req.headers['content-type'] ?? '';
    const body = await readBody(req);
    if (body === undefined || !type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      return { status: 400, headers: { 'Content-Type': 'application/json' }, body: { error: 'invalid_request', error_description: 'AADSTS900144: The request body must be application/x-www-form-urlencoded.', error_codes: [900144] } };
    }
    const result = handleTokenRequest({
      state: s2s,
      tenant,
      form: new URLSearchParams(body),
      tokenEndpoint: `${origin}/${tenant}/oauth2/v2.0/token`,
      graphUrl,
      now,
      issue: (token, record) => tokens.set(token, record),
    });
    if (result.status !== 200) logger.info({ tenant, status: result.status, error: result.body['error'] }, 'token request refused');
    return result;
  }

  async function handleGraph(req: IncomingMessage, url: URL, method: string, now: number): Promise<{ operation: string; response: GraphResponse }> {
    const pathname = url.pathname.replace(/\/+$/, '');
    let operation = 'other';
    let target: string | undefined;
    let permission: GraphResponse | undefined;
    let run: (() => Promise<GraphResponse> | GraphResponse) | undefined;
    const spMatch = SP_PATH.exec(pathname);
    if (method === 'GET' && pathname === '/graph/v1.0/organization') {
      operation = 'get-organization';
      target = 'graph:get-organization';
      permission = requirePermission('Organization.Read.All', ['Directory.Read.All', 'Directory.ReadWrite.All']);
      run = () => getOrganization(s2s, graphUrl);
    } else if (method === 'GET' && pathname === '/graph/v1.0/servicePrincipals') {
      operation = 'list-service-principals';
      target = 'graph:get-service-principal';
      permission = requirePermission('Application.Read.All', ['Application.ReadWrite.All', 'Directory.Read.All']);
      run = () => listServicePrincipals(s2s, url.searchParams, graphUrl);
    } else if (spMatch?.[1] && method === 'GET') {
      const id = decodeURIComponent(spMatch[1]);
      operation = 'get-service-principal';
      target = 'graph:get-service-principal';
      permission = requirePermission('Application.Read.All', ['Application.ReadWrite.All', 'Directory.Read.All']);
      run = () => getServicePrincipal(s2s, id, url.searchParams, graphUrl);
    } else if (spMatch?.[1] && method === 'PATCH') {
      const id = decodeURIComponent(spMatch[1]);
      operation = 'patch-service-principal';
      target = 'graph:patch-service-principal';
      permission = requirePermission('Application.ReadWrite.All');
      run = async () => {
        const text = await readBody(req);
        if (text === undefined) return graphError(413, 'RequestEntityTooLarge', 'The request body is too large.');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          return graphError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.');
        }
        const response = patchServicePrincipal(s2s, id, body, { dropNewKeyCredentials: s2s.breakage.keyCredentialDropped });
        if (response.status === 204) logger.info({ id, keyCredentials: s2s.servicePrincipal.keyCredentials.length }, 'service principal updated');
        return response;
      };
    }
    if (!run || !target) {
      return { operation, response: graphError(400, 'BadRequest', `Resource not found for the segment '${pathname}' (${method}).`) };
    }
    const unauthenticated = checkBearer(req, now);
    if (unauthenticated) return { operation, response: unauthenticated };
    const fault = takeFault(s2s, target);
    if (fault && fault.hangMs === undefined) return { operation, response: graphFault(fault.message ?? '503') };
    if (permission) return { operation, response: permission };
    const response = await run();
    if (operation === 'patch-service-principal' && response.status < 300) countChange(s2s, target);
    // A hang: the call took effect; its answer comes late.
    if (fault?.hangMs !== undefined) await hang(fault.hangMs);
    return { operation, response };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', origin);
    const now = Date.now();
    const tokenMatch = TOKEN_PATH.exec(url.pathname);
    const openIdMatch = OPENID_PATH.exec(url.pathname);
    let operation: string;
    let response: GraphResponse;
    if (tokenMatch?.[1] && method === 'POST') {
      operation = 'token';
      response = await handleToken(req, tokenMatch[1], now);
    } else if (openIdMatch?.[1] && method === 'GET') {
      operation = 'openid-configuration';
      const tenant = openIdMatch[1];
      response = {
        status: 200,
        headers: { 'Content-Type': 'application/json' },
        body: {
          issuer: `${origin}/${tenant}/v2.0`,
          token_endpoint: `${origin}/${tenant}/oauth2/v2.0/token`,
          authorization_endpoint: `${origin}/${tenant}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${origin}/${tenant}/oauth2/v2.0/logout`,
          jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          tenant_region_scope: 'EU',
        },
      };
    } else if (url.pathname.startsWith('/graph/')) {
      ({ operation, response } = await handleGraph(req, url, method, now));
    } else {
      operation = 'other';
      response = graphError(404, 'NotFound', `No route for ${method} ${url.pathname}.`);
    }
    count(operation);
    stats.byStatus[String(response.status)] = (stats.byStatus[String(response.status)] ?? 0) + 1;
    logger.debug({ method, path: url.pathname, operation, status: response.status }, 'graph simulator request');
    send(res, response);
  }

  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error({ err: error }, 'graph simulator request failed');
      if (!res.headersSent) send(res, graphError(500, 'InternalServerError', 'The simulator failed to handle the request.'));
      else res.end();
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  ({ loginUrl: origin, graphUrl } = graphSimulatorUrls(urlHost, port));
  logger.info({ loginUrl: origin, graphUrl, caFile }, 'graph simulator listening');

  return {
    loginUrl: origin,
    graphUrl,
    caPem: tls.caPem,
    caFile,
    stats,
    resetStats() {
      stats.requests = 0;
      for (const key of Object.keys(stats.byOperation)) delete stats.byOperation[key];
      for (const key of Object.keys(stats.byStatus)) delete stats.byStatus[key];
    },
    async close() {
      closing.abort();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      if (ownDir) await rm(tlsDir, { recursive: true, force: true });
    },
  };
}

/** Where a Graph simulator on `host:port` answers: the login authority host and the Graph base. */
export function graphSimulatorUrls(host: string, port: number): { loginUrl: string; graphUrl: string } {
  const loginUrl = `https://${host}:${port}`;
  return { loginUrl, graphUrl: `${loginUrl}/graph` };
}

/** The CA file name the simulator writes into its tlsDir (the agent's TLS_CA_FILE). */
export const GRAPH_SIM_CA_FILE_NAME = 'graph-simulator-ca.pem';
