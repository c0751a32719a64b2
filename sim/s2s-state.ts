import type { SimExchangeOnline } from './exchange-online.ts';

/**
 * The simulated on-premises and Entra side of server-to-server authentication: the certificate
 * stores of the asynchronous-service servers (with KeySpec and key ACLs), CRM's S2STokenIssuer
 * registration and S2S settings, the async services, the Entra tenant and the CRM service
 * principal with its key credentials. The PowerShell stand-in (powershell-api.ts) and the Graph
 * simulator (graph-simulator.ts) read and change it; the Test & Enable engine asks `s2sHealth`
 * whether mail can authenticate, so a broken rotation shows up as failing mailboxes, as it would
 * in production.
 */

/** A certificate as the simulator keeps it: public facts plus what Windows would know about its key. */
export interface SimCertificate {
  thumbprint: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  /** Base64 DER of the public certificate. */
  derBase64: string;
}

export interface SimStoredCertificate extends SimCertificate {
  /** 1 AT_KEYEXCHANGE, 2 AT_SIGNATURE, 0 CNG. */
  keySpec: 0 | 1 | 2;
  hasPrivateKey: boolean;
  /** Accounts with Read on the private key (lower-case DOMAIN\user). */
  keyReaders: string[];
}

export const ASYNC_SERVICES = ['MSCRMAsyncService', 'MSCRMAsyncService$maintenance'] as const;

export interface SimService {
  status: 'Running' | 'Stopped';
  /** ms since epoch of the last start. */
  startedAt: number;
}

export interface SimServer {
  name: string;
  /** LocalMachine\My, by thumbprint. */
  store: Map<string, SimStoredCertificate>;
  services: Record<(typeof ASYNC_SERVICES)[number], SimService>;
}

export interface SimKeyCredential {
  keyId: string;
  type: 'AsymmetricX509Cert';
  usage: 'Verify';
  /** Base64 of the SHA-1 thumbprint bytes. */
  customKeyIdentifier: string | null;
  displayName: string | null;
  startDateTime: string;
  endDateTime: string;
  /** Base64 DER. */
  key: string;
}

export interface SimServicePrincipal {
  id: string;
  appId: string;
  displayName: string;
  servicePrincipalNames: string[];
  keyCredentials: SimKeyCredential[];
}

/** The helper app registration the agent signs in with (client credentials). */
export interface SimGraphApp {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** PEM certificates accepted for client assertions (certificate credential). */
  certificates: string[];
  /** Graph application permissions granted (Application.ReadWrite.All, Organization.Read.All, User.Read). */
  permissions: string[];
}

/**
 * A fault the admin API can set: the next `times` calls of `target` fail with `message` or, with
 * `hangMs`, take effect and answer only after `hangMs` (an agent killed meanwhile has made the change
 * without seeing the answer).
 */
export interface S2SFault {
  /**
   * A PowerShell script name ('Import-S2SCertificate'), optionally `@<server>`; a Graph call
   * ('graph:token', 'graph:get-organization', 'graph:get-service-principal',
   * 'graph:patch-service-principal'); a CRM write ('crm:POST emailserverprofiles',
   * 'crm:PATCH organizations', 'crm:PATCH mailboxes', also inside $batch).
   */
  target: string;
  /** The error text (a script's stderr, a Graph status code or message, a CRM error message). Absent with hangMs alone. */
  message?: string;
  times: number;
  /** CRM write faults: the HTTP status (default 400). */
  status?: number;
  /** CRM write faults: the error code of the JSON body (default 0x80040220). */
  code?: string;
  /** The call takes effect, then its (normal) answer waits this long; `message` is then ignored. */
  hangMs?: number;
}

/** What Test-LocalAdministrator.ps1 reports about the agent's own account on its host. */
export interface SimAgentHost {
  isAdministrator: boolean;
  user: string;
}

/** Silent breakage a real deployment can have, for the "broken rotation" demo and tests. */
export interface S2SBreakage {
  /** Grant-CertificateKeyAccess reports success but grants nothing (a wrong account, a GPO resetting ACLs). */
  keyAccessNotApplied: boolean;
  /** The PATCH of keyCredentials is accepted but the new credential is dropped (replication, a second tenant). */
  keyCredentialDropped: boolean;
}

export interface S2SState {
  serviceAccount: string;
  /** The tenant's Exchange Online: its EWS access policy (exchange-online.ts). */
  exchange: SimExchangeOnline;
  servers: SimServer[];
  /** Set-CrmCertificate S2STokenIssuer; null when none is registered. */
  crmCertificate: (SimCertificate & { registeredAt: number }) | null;
  serverSettings: { principalId: string | null; metadataUrl: string | null };
  organization: { id: string; uniqueName: string; s2sTenantId: string | null };
  tenant: { id: string; displayName: string };
  servicePrincipal: SimServicePrincipal;
  app: SimGraphApp;
  /** ms since epoch of the last change that the async services must be restarted to pick up. */
  lastS2SChangeAt: number;
  faults: S2SFault[];
  breakage: S2SBreakage;
  /** The agent's account on its host (knob `localAdministrator`). */
  agentHost: SimAgentHost;
  /**
   * Changing calls by operation (GET /_sim/state `counters.changes`): a script name for each script
   * run that changed something, `graph:patch-service-principal` for each accepted PATCH.
   */
  changeCounts: Record<string, number>;
}

/** Counts one changing call of `operation`. */
export function countChange(state: S2SState, operation: string): void {
  state.changeCounts[operation] = (state.changeCounts[operation] ?? 0) + 1;
}

export type S2SHealth =
  | { ok: true }
  | {
    ok: false;
    reason: 'not-registered' | 'certificate-expired' | 'not-on-server' | 'keyspec' | 'key-not-readable' | 'no-key-credential' | 'services-not-restarted' | 'settings';
    /** The trace text a mailbox gets (d365-contract.md known errors). */
    traceText: string;
  };

const FAILED_AUTH = 'Failed Authentication: the S2S certificate is missing or invalid.';

/**
 * Whether server-side sync can authenticate to Exchange Online right now: the registered
 * certificate is valid, in every server's store with KeySpec 1 and a key the service account can
 * read, a valid key credential of the CRM service principal, the S2S settings are set, and the
 * services were restarted after the last change.
 */
export function s2sHealth(state: S2SState, now: number): S2SHealth {
  const cert = state.crmCertificate;
  if (!cert) return { ok: false, reason: 'not-registered', traceText: `${FAILED_AUTH} No certificate is registered as S2STokenIssuer.` };
  if (Date.parse(cert.notAfter) <= now) return { ok: false, reason: 'certificate-expired', traceText: `${FAILED_AUTH} The certificate ${cert.thumbprint} expired on ${cert.notAfter}.` };
  if (!state.serverSettings.principalId || !state.serverSettings.metadataUrl) {
    return { ok: false, reason: 'settings', traceText: `${FAILED_AUTH} The S2S server settings are not set.` };
  }
  const account = state.serviceAccount.toLowerCase();
  for (const server of state.servers) {
    const stored = server.store.get(cert.thumbprint);
    if (!stored || !stored.hasPrivateKey) {
      return { ok: false, reason: 'not-on-server', traceText: `${FAILED_AUTH} The certificate ${cert.thumbprint} was not found with its private key on ${server.name} (private key not found).` };
    }
    if (stored.keySpec !== 1) {
      return { ok: false, reason: 'keyspec', traceText: `${FAILED_AUTH} The certificate on ${server.name} has KeySpec ${stored.keySpec}; CRM needs KeySpec 1 (AT_KEYEXCHANGE).` };
    }
    if (!stored.keyReaders.includes(account)) {
      return { ok: false, reason: 'key-not-readable', traceText: `${FAILED_AUTH} Keyset does not exist: ${state.serviceAccount} cannot read the private key on ${server.name}.` };
    }
    for (const name of Object.keys(server.services) as (keyof SimServer['services'])[]) {
      const service = server.services[name];
      if (service.status !== 'Running' || service.startedAt < state.lastS2SChangeAt) {
        return { ok: false, reason: 'services-not-restarted', traceText: `${FAILED_AUTH} ${name} on ${server.name} still uses the previous S2S configuration: restart it.` };
      }
    }
  }
  const credential = state.servicePrincipal.keyCredentials.find((k) => k.key === cert.derBase64 && Date.parse(k.endDateTime) > now && Date.parse(k.startDateTime) <= now);
  if (!credential) {
    return {
      ok: false,
      reason: 'no-key-credential',
      traceText: 'HTTP 401 Unauthorized: the token signed with the S2S certificate was rejected (invalid_token): the certificate is not a key credential of the Microsoft Dynamics CRM service principal.',
    };
  }
  return { ok: true };
}

/** Takes one pending fault for `target` (or `target@server`), if any. */
export function takeFault(state: S2SState, target: string, server?: string): S2SFault | undefined {
  const index = state.faults.findIndex((f) => f.times > 0 && (f.target === target || (server !== undefined && f.target.toLowerCase() === `${target}@${server}`.toLowerCase())));
  if (index < 0) return undefined;
  const fault = state.faults[index];
  if (!fault) return undefined;
  fault.times -= 1;
  if (fault.times <= 0) state.faults.splice(index, 1);
  return fault;
}
