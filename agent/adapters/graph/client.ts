import { AsyncLocalStorage } from 'node:async_hooks';
import { ConfidentialClientApplication, LogLevel, type Configuration, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';
import { AuthenticationHandler, Client, type AuthenticationProvider, type Context, type Middleware } from '@microsoft/microsoft-graph-client';
import { z } from 'zod';
import type { Logger } from '../../../core/logger.ts';
import { SetupError } from '../../../core/setup-error.ts';
import { CRM_APP_ID, type CrmServicePrincipal, type GraphApi, type KeyCredentialInput } from './api.ts';
import { parseClientCertificatePem } from './credential.ts';
import { createGraphHttp, isRetryableResponseStatus, type GraphHttp } from './http.ts';

/**
 * The Microsoft Graph client of the certificate steps (GraphApi): an app-only token from msal-node
 * (client credentials, secret or certificate) and requests through microsoft-graph-client, both
 * over graph-http.ts (TLS_CA_FILE trusted, 429/5xx retried). The login and Graph hosts come from
 * configuration (national clouds, the simulator); msal is told to trust the login host as given,
 * without Microsoft's instance discovery. Every failure comes out as a SetupError:
 * GRAPH_AUTH_FAILED (token refused), GRAPH_FORBIDDEN (403), GRAPH_REQUEST_FAILED (anything else).
 *
 * Over 400 lines on purpose: msal's network module, the token provider, the Graph middleware and
 * the GraphApi methods share one request path and one error mapping; split, each part would need
 * the others' internals.
 */
export interface GraphClientOptions {
  /** e.g. https://login.microsoftonline.com */
  loginUrl: string;
  /** e.g. https://graph.microsoft.com */
  graphUrl: string;
  tenantId: string;
  clientId: string;
  clientSecret?: string;
  /** PEM holding the certificate and its private key (preferred over the secret when both are set). */
  clientCertificatePem?: string;
  /** Extra CA(s) to trust for both hosts (TLS_CA_FILE). */
  caPem?: string;
  logger: Logger;
  /** Retries of 429 / 5xx / network failures per request (default 4). */
  maxRetries?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Per HTTP request (default 30 s). */
  requestTimeoutMs?: number;
}

export interface GraphClient extends GraphApi {
  /** Closes the HTTP connection pool. */
  close(): Promise<void>;
}

const FORBIDDEN_HINT = 'Grant the app registration (GRAPH_CLIENT_ID) the Microsoft Graph application permissions Application.ReadWrite.All and Organization.Read.All and give admin consent, then try again.';
const AUTH_HINT = 'Check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and the credential (GRAPH_CLIENT_SECRET, or GRAPH_CLIENT_CERT_FILE whose certificate must be uploaded to the app registration).';
const AADSTS_HINTS: Record<string, string> = {
  '90002': 'Check GRAPH_TENANT_ID: it must be the tenant ID (a GUID) of the Microsoft 365 tenant, and CLOUD / GRAPH_LOGIN_URL must be its cloud.',
  '700016': 'Check GRAPH_CLIENT_ID: it must be the Application (client) ID of the app registration in that tenant.',
  '7000215': 'Check GRAPH_CLIENT_SECRET: use the secret\'s Value (not its Secret ID) and make sure it has not expired.',
  '7000222': 'The client secret has expired: create a new one on the app registration and set GRAPH_CLIENT_SECRET.',
  '700027': 'Check GRAPH_CLIENT_CERT_FILE: its certificate must be uploaded to the app registration (Certificates & secrets) and still be valid.',
};

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const graphKeyCredentialSchema = z.object({
  keyId: z.string(),
  type: z.string(),
  usage: z.string(),
  customKeyIdentifier: z.string().nullable().default(null),
  displayName: z.string().nullable().default(null),
  startDateTime: z.string().nullable().default(null),
  endDateTime: z.string().nullable().default(null),
  key: z.string().nullable().default(null),
});
const servicePrincipalSchema = z.object({
  id: z.string().regex(GUID),
  appId: z.string(),
  servicePrincipalNames: z.array(z.string()),
  keyCredentials: z.array(graphKeyCredentialSchema),
});
const servicePrincipalListSchema = z.object({ value: z.array(z.object({ id: z.string().regex(GUID), appId: z.string() })) });
const organizationSchema = z.object({ value: z.array(z.object({ id: z.string().regex(GUID) })).min(1) });
const organizationDomainsSchema = z.object({
  value: z.array(z.object({ verifiedDomains: z.array(z.object({ name: z.string().max(253), isInitial: z.boolean().optional() })).default([]) })).min(1),
});
const keyCredentialInputSchema = z.object({
  keyId: z.string().regex(GUID).optional(),
  type: z.literal('AsymmetricX509Cert'),
  usage: z.literal('Verify'),
  key: z.string().min(1).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'is not base64'),
  displayName: z.string().max(1024),
  startDateTime: z.string().datetime({ offset: true }),
  endDateTime: z.string().datetime({ offset: true }),
  customKeyIdentifier: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'is not base64').optional(),
}).strict();
const namesSchema = z.array(z.string().min(1).max(400)).max(1000);

/** A Graph SDK error as far as the mapping needs it. */
interface GraphSdkError {
  statusCode: number;
  code: string | null;
  message: string;
  headers?: { get(name: string): string | null };
}

function isGraphSdkError(value: unknown): value is GraphSdkError {
  return value instanceof Error && typeof (value as Partial<GraphSdkError>).statusCode === 'number';
}

interface MsalErrorLike {
  errorCode: string;
  errorMessage: string;
}

function isMsalError(value: unknown): value is MsalErrorLike {
  return value instanceof Error && typeof (value as Partial<MsalErrorLike>).errorCode === 'string' && typeof (value as Partial<MsalErrorLike>).errorMessage === 'string';
}

function bounded(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Per public call: the SetupError a lower layer (HTTP, msal's network module, the auth provider) failed with, which msal or the Graph SDK would otherwise flatten. */
interface Failure {
  error?: SetupError;
}

export function createGraphClient(options: GraphClientOptions): GraphClient {
  const logger = options.logger.child({ component: 'graph-client' });
  const loginUrl = new URL(options.loginUrl);
  const graphBase = options.graphUrl.replace(/\/+$/, '');
  const graphHost = new URL(graphBase).hostname;
  const authority = `${loginUrl.origin}${loginUrl.pathname.replace(/\/+$/, '')}/${options.tenantId}`;
  const secret = options.clientSecret !== undefined && options.clientSecret.length > 0 ? options.clientSecret : undefined;
  const certificate = options.clientCertificatePem !== undefined && options.clientCertificatePem.length > 0 ? parseClientCertificatePem(options.clientCertificatePem) : undefined;
  if (!certificate && secret === undefined) {
    throw new SetupError('CONFIG_MISSING', 'The Graph client has no credential.', { hint: 'Set GRAPH_CLIENT_CERT_FILE (a PEM with certificate and private key) or GRAPH_CLIENT_SECRET.' });
  }
  const failures = new AsyncLocalStorage<Failure>();
  const record = (error: SetupError): SetupError => {
    const failure = failures.getStore();
    if (failure && !failure.error) failure.error = error;
    return error;
  };
  /** Removes the secret from text that came back from the server, in case it was ever echoed. */
  const scrub = (text: string): string => (secret === undefined ? text : text.split(secret).join('[redacted]'));

  const http: GraphHttp = createGraphHttp({
    logger,
    ...(options.caPem === undefined ? {} : { caPem: options.caPem }),
    ...(options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries }),
    ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
    ...(options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs }),
  });

  /** msal's HTTP goes through graph-http too (same CA, same retries; msal's own retries are off). */
  const msalNetwork: INetworkModule = {
    sendGetRequestAsync: <T>(url: string, request?: NetworkRequestOptions) => msalSend<T>('GET', url, request),
    sendPostRequestAsync: <T>(url: string, request?: NetworkRequestOptions) => msalSend<T>('POST', url, request),
  };
  async function msalSend<T>(method: string, url: string, request: NetworkRequestOptions | undefined): Promise<NetworkResponse<T>> {
    let response;
    try {
      response = await http.send(url, { method, headers: request?.headers ?? {}, ...(request?.body === undefined ? {} : { body: request.body }) });
    } catch (error) {
      // msal replaces errors it does not know with a generic one: keep ours for the caller.
      if (error instanceof SetupError) record(error);
      throw error;
    }
    const text = await response.text();
    let body: unknown = {};
    try {
      body = text.length > 0 ? JSON.parse(text) : {};
    } catch {
      body = {};
    }
    if (isRetryableResponseStatus(response.status)) {
      record(new SetupError('GRAPH_REQUEST_FAILED', `The Entra ID token endpoint answered HTTP ${response.status}${response.status === 429 ? ' (throttled)' : ''} after every retry.`, {
        hint: 'Entra ID is busy or unavailable: try again in a few minutes.',
        retryable: true,
        details: { status: response.status },
      }));
    }
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      headers[name.toLowerCase()] = value;
    });
    return { status: response.status, headers, body: body as T };
  }

  const tokenEndpoint = `${authority}/oauth2/v2.0/token`;
  const msalConfig: Configuration = {
    auth: {
      clientId: options.clientId,
      authority,
      knownAuthorities: [loginUrl.host],
      authorityMetadata: JSON.stringify({
        token_endpoint: tokenEndpoint,
        issuer: `${authority}/v2.0`,
        authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
        jwks_uri: `${authority}/discovery/v2.0/keys`,
      }),
      ...(certificate ? { clientCertificate: certificate } : secret === undefined ? {} : { clientSecret: secret }),
    },
    system: {
      networkClient: msalNetwork,
      disableInternalRetries: true,
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        loggerCallback: (level, message) => {
          if (level <= LogLevel.Warning) logger.debug({ msal: scrub(bounded(message, 500)) }, 'msal');
        },
      },
    },
  };
  const msal = new ConfidentialClientApplication(msalConfig);
  const scopes = [`${graphBase}/.default`];

  function tokenError(error: unknown): SetupError {
    const pending = failures.getStore()?.error;
    if (pending) return pending;
    if (error instanceof SetupError) return error;
    if (isMsalError(error)) {
      const description = scrub(error.errorMessage.split(/\s+Trace ID:/)[0] ?? '').trim();
      const aadsts = /AADSTS(\d+)/.exec(description)?.[1];
      const text = description.length > 0 ? description : error.errorCode;
      return new SetupError('GRAPH_AUTH_FAILED', `Entra ID refused a token for app ${options.clientId} in tenant ${options.tenantId}: ${bounded(text)}`, {
        hint: (aadsts !== undefined ? AADSTS_HINTS[aadsts] : undefined) ?? AUTH_HINT,
        retryable: false,
        cause: error,
        details: { errorCode: error.errorCode, ...(aadsts === undefined ? {} : { aadsts: `AADSTS${aadsts}` }) },
      });
    }
    return new SetupError('GRAPH_AUTH_FAILED', `Could not get a Microsoft Graph token: ${bounded(scrub(error instanceof Error ? error.message : String(error)))}`, {
      hint: AUTH_HINT,
      cause: error,
    });
  }

  /** An app-only token; `fresh` skips msal's cache (the roles a new token would carry: permissions granted since). */
  async function accessToken(fresh = false): Promise<string> {
    let result;
    try {
      result = await msal.acquireTokenByClientCredential({ scopes, ...(fresh ? { skipCache: true } : {}) });
    } catch (error) {
      const mapped = tokenError(error);
      // msal remembers a 429/5xx of the token endpoint and refuses every request for up to a minute
      // without asking again; our retries already honoured Retry-After, so the next call (a BullMQ
      // retry) may ask again. clearCache drops that memory and the (unused) cached tokens.
      if (mapped.retryable) msal.clearCache();
      throw record(mapped);
    }
    if (!result?.accessToken) throw record(new SetupError('GRAPH_AUTH_FAILED', 'Entra ID returned no access token.', { hint: AUTH_HINT }));
    logger.debug({ fromCache: result.fromCache, expiresOn: result.expiresOn?.toISOString() }, 'graph token ready');
    return result.accessToken;
  }

  /** The last link of the Graph SDK's middleware chain: graph-http instead of the global fetch. */
  const transport: Middleware = {
    execute: async (context: Context): Promise<void> => {
      // The SDK always passes the URL as a string (GraphRequest.buildFullUrl).
      const request: unknown = context.request;
      const url = typeof request === 'string' ? request : String((request as { url?: unknown }).url);
      const init = context.options ?? {};
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => {
        headers[name] = value;
      });
      const body = typeof init.body === 'string' ? init.body : undefined;
      try {
        const response = await http.send(url, { method: init.method ?? 'GET', headers, ...(body === undefined ? {} : { body }) });
        context.response = response;
      } catch (error) {
        if (error instanceof SetupError) record(error);
        throw error;
      }
    },
  };
  // The SDK sends the token only to the Graph host (customHosts), never to another host a URL might name.
  const authProvider: AuthenticationProvider = { getAccessToken: () => accessToken() };
  const graph = Client.initWithMiddleware({
    baseUrl: `${graphBase}/`,
    defaultVersion: 'v1.0',
    customHosts: new Set([graphHost]),
    middleware: [new AuthenticationHandler(authProvider), transport],
  });

  function requestError(error: unknown, operation: string): SetupError {
    const pending = failures.getStore()?.error;
    if (pending) return pending;
    if (error instanceof SetupError) return error;
    if (isGraphSdkError(error)) {
      const status = error.statusCode;
      const code = error.code ?? 'unknown';
      const message = bounded(scrub(error.message || ''), 300);
      if (status === 403) {
        return new SetupError('GRAPH_FORBIDDEN', `Microsoft Graph refused ${operation} (403 ${code}: ${message}).`, { hint: FORBIDDEN_HINT, cause: error, details: { status, code } });
      }
      if (status === 401) {
        return new SetupError('GRAPH_AUTH_FAILED', `Microsoft Graph did not accept the token for ${operation} (401 ${code}: ${message}).`, { hint: AUTH_HINT, cause: error, details: { status, code } });
      }
      const retryable = isRetryableResponseStatus(status);
      return new SetupError('GRAPH_REQUEST_FAILED', `Microsoft Graph answered ${status > 0 ? status : 'nothing'} to ${operation}${retryable ? ' after every retry' : ''} (${code}: ${message}).`, {
        hint: retryable ? 'Microsoft Graph is busy or unavailable: try again in a few minutes.' : 'This is unexpected: the details are in the agent log.',
        retryable,
        cause: error,
        details: { status, code },
      });
    }
    return new SetupError('GRAPH_REQUEST_FAILED', `Microsoft Graph request ${operation} failed: ${bounded(scrub(error instanceof Error ? error.message : String(error)))}`, { cause: error });
  }

  async function call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const failure: Failure = {};
    try {
      return await failures.run(failure, async () => {
        try {
          return await work();
        } catch (error) {
          throw requestError(error, operation);
        }
      });
    } catch (error) {
      const mapped = failure.error ?? (error instanceof SetupError ? error : requestError(error, operation));
      logger.warn({ operation, code: mapped.code, retryable: mapped.retryable, err: { message: mapped.message } }, 'graph call failed');
      throw mapped;
    }
  }

  function parse<S extends z.ZodTypeAny>(schema: S, value: unknown, what: string): z.infer<S> {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new SetupError('GRAPH_REQUEST_FAILED', `Microsoft Graph returned an unexpected ${what} (${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid'}).`, {
        hint: 'Check that GRAPH_URL points at Microsoft Graph.',
      });
    }
    return parsed.data as z.infer<S>;
  }

  function objectId(id: string): string {
    if (!GUID.test(id)) throw new SetupError('GRAPH_REQUEST_FAILED', `'${bounded(id, 80)}' is not a service principal object id.`);
    return id;
  }

  return {
    grantedRoles: () =>
      call('token roles', async () => {
        // A new token: permissions granted (and consented) since the cached one was issued count.
        const token = await accessToken(true);
        return rolesOfToken(token);
      }),

    getTenantId: () =>
      call('GET /organization', async () => {
        const body: unknown = await graph.api('/organization').select('id').get();
        const organization = parse(organizationSchema, body, 'organization list');
        const first = organization.value[0];
        if (!first) throw new SetupError('GRAPH_REQUEST_FAILED', 'Microsoft Graph returned no organization.');
        return first.id;
      }),

    getInitialDomain: () =>
      call('GET /organization', async () => {
        const body: unknown = await graph.api('/organization').select(['id', 'verifiedDomains']).get();
        const first = parse(organizationDomainsSchema, body, 'organization list').value[0];
        return first?.verifiedDomains.find((d) => d.isInitial === true)?.name.toLowerCase() ?? null;
      }),

    getCrmServicePrincipal: () =>
      call('GET /servicePrincipals', async (): Promise<CrmServicePrincipal> => {
        const list: unknown = await graph.api('/servicePrincipals').filter(`appId eq '${CRM_APP_ID}'`).select(['id', 'appId']).get();
        const found = parse(servicePrincipalListSchema, list, 'service principal list').value.find((sp) => sp.appId.toLowerCase() === CRM_APP_ID);
        if (!found) {
          throw new SetupError('GRAPH_REQUEST_FAILED', `The tenant ${options.tenantId} has no service principal for Microsoft Dynamics CRM (appId ${CRM_APP_ID}).`, {
            hint: `A tenant administrator creates it (for example with New-MgServicePrincipal -AppId ${CRM_APP_ID}), then try again.`,
          });
        }
        const one: unknown = await graph.api(`/servicePrincipals/${encodeURIComponent(found.id)}`).select(['id', 'appId', 'servicePrincipalNames', 'keyCredentials']).get();
        const sp = parse(servicePrincipalSchema, one, 'service principal');
        return { id: sp.id, appId: sp.appId, servicePrincipalNames: sp.servicePrincipalNames, keyCredentials: sp.keyCredentials };
      }),

    setKeyCredentials: (servicePrincipalId: string, keyCredentials: KeyCredentialInput[]) =>
      call('PATCH /servicePrincipals keyCredentials', async () => {
        const id = objectId(servicePrincipalId);
        const entries = keyCredentials.map((k, i) => parse(keyCredentialInputSchema, k, `key credential #${i + 1} to write`));
        await graph.api(`/servicePrincipals/${encodeURIComponent(id)}`).patch({ keyCredentials: entries });
        logger.info({ servicePrincipalId: id, keyCredentials: entries.length, added: entries.filter((k) => k.keyId === undefined).length }, 'key credentials written');
      }),

    setServicePrincipalNames: (servicePrincipalId: string, names: string[]) =>
      call('PATCH /servicePrincipals servicePrincipalNames', async () => {
        const id = objectId(servicePrincipalId);
        const servicePrincipalNames = parse(namesSchema, names, 'list of service principal names to write');
        await graph.api(`/servicePrincipals/${encodeURIComponent(id)}`).patch({ servicePrincipalNames });
        logger.info({ servicePrincipalId: id, servicePrincipalNames: servicePrincipalNames.length }, 'service principal names written');
      }),

    close: () => http.close(),
  };
}

const tokenClaimsSchema = z.object({ roles: z.array(z.string().max(200)).max(500).optional() }).passthrough();

/**
 * The `roles` claim of an app-only access token (a JWT: header.payload.signature, base64url): the
 * application permissions granted to the app with admin consent. Read only, never verified: the
 * agent got the token from the token endpoint itself and only reports what it says.
 */
export function rolesOfToken(token: string): string[] {
  const parts = token.split('.');
  const payload = parts.length === 3 ? parts[1] : undefined;
  let claims: unknown;
  try {
    claims = payload === undefined ? undefined : JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    claims = undefined;
  }
  const parsed = tokenClaimsSchema.safeParse(claims);
  if (!parsed.success) {
    throw new SetupError('GRAPH_REQUEST_FAILED', 'The access token from Entra ID is not a JWT whose claims can be read, so the granted permissions are unknown.', {
      hint: "Check the app registration's API permissions in the Entra admin center (Application.ReadWrite.All, Organization.Read.All, admin consent granted).",
    });
  }
  return parsed.data.roles ?? [];
}
