import { createHash } from 'node:crypto';
import { ASYNC_SERVICES, type S2SState, type SimCertificate, type SimServer, type SimStoredCertificate } from './s2s-state.ts';
import { seedExchangeOnline } from './exchange-online.ts';
import { createSimCertificate } from './sim-certificates.ts';
import type { SimScenario } from './sim-state.ts';

/**
 * The S2S side of the seeded deployment: a current certificate (real RSA 2048 / SHA-256, valid
 * `certDaysLeft` more days), registered as S2STokenIssuer, in LocalMachine\My of every async
 * server with KeySpec 1 and the service account as a key reader, a key credential on the CRM
 * service principal, the S2S settings for the public cloud, and the async services started after
 * the last S2S change: a healthy deployment (`s2sHealth` ok).
 */
export const CRM_APP_ID = '00000007-0000-0000-c000-000000000000';
export const S2S_PRINCIPAL_ID = '00000001-0000-0000-c000-000000000000';
export const PUBLIC_METADATA_URL = 'https://accounts.accesscontrol.windows.net/metadata/json/1';
export const SIM_TENANT_ID = '7b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d';
export const SIM_GRAPH_CLIENT_ID = '3f2e1d0c-b9a8-4765-9432-10fedcba9876';
export const SIM_SERVICE_PRINCIPAL_ID = 'a1b2c3d4-e5f6-4789-8abc-def012345678';
export const SIM_GRAPH_PERMISSIONS = ['Application.ReadWrite.All', 'Organization.Read.All', 'User.Read'] as const;
export const DEFAULT_ASYNC_SERVERS = ['CRMAPP01', 'CRMAPP02'] as const;
export const DEFAULT_SERVICE_ACCOUNT = 'CONTOSO\\crmasync';
export const DEFAULT_CERT_DAYS_LEFT = 200;
export const DEFAULT_GRAPH_CLIENT_SECRET = 'sim-client-secret';

export interface S2SSeedOptions {
  /** Days until the current certificate expires (default 200; 0 or less: already expired). */
  certDaysLeft?: number;
  /** Servers running the Asynchronous Processing Service (default CRMAPP01, CRMAPP02). */
  asyncServers?: readonly string[];
  /** DOMAIN\user the async services run as (default CONTOSO\crmasync). */
  serviceAccount?: string;
  /** The helper app registration's client secret (default 'sim-client-secret'). */
  graphClientSecret?: string;
  tenantId?: string;
  graphClientId?: string;
  /** CRM organization (id and unique name). */
  organizationId?: string;
  orgName?: string;
  /** The clock the seeded dates are relative to (ms); default now. */
  nowMs?: number;
  /**
   * 'fresh': server-to-server authentication never set up: no certificate registered, none in the
   * servers' stores, no key credential on the CRM service principal, no S2S server settings, no
   * S2STenantId on the organization; the async services run; Exchange Online blocks EWS for CRM
   * (EwsEnabled false, CRM not allow-listed). Default 'configured' (healthy).
   */
  scenario?: SimScenario;
}

/** The account Test-LocalAdministrator reports the agent runs as. */
export const SIM_AGENT_USER = 'CONTOSO\\crmsetup';

const DAY = 86_400_000;
/** The seeded certificate was issued this long before now. */
const ISSUED_DAYS_AGO = 165;

/** A seeded certificate is reused while the wanted expiry is within this of its own (resets keep the thumbprint). */
const REUSE_WITHIN_MS = 3_600_000;
const seededCertificates = new Map<number, SimCertificate>();

function seededCertificate(nowMs: number, daysLeft: number): SimCertificate {
  const wantedNotAfter = nowMs + daysLeft * DAY;
  const cached = seededCertificates.get(daysLeft);
  if (cached && Math.abs(Date.parse(cached.notAfter) - wantedNotAfter) <= REUSE_WITHIN_MS) return cached;
  const notAfter = new Date(wantedNotAfter);
  const notBefore = new Date(Math.min(nowMs, wantedNotAfter) - ISSUED_DAYS_AGO * DAY);
  const { certificatePem: _pem, privateKeyPem: _key, ...publicFacts } = createSimCertificate({ commonName: 'crm-s2s.contoso.com', notBefore, notAfter, keyLabel: 'seeded-current' });
  seededCertificates.set(daysLeft, publicFacts);
  return publicFacts;
}

/** Base64 of the thumbprint's bytes (what the Graph key credential's customKeyIdentifier holds). */
export function customKeyIdentifierOf(thumbprint: string): string {
  return Buffer.from(thumbprint, 'hex').toString('base64');
}

/** A stable GUID-shaped key id derived from a thumbprint (the seed must not draw random ids). */
function keyIdOf(thumbprint: string): string {
  const hex = createHash('sha256').update(`keyId:${thumbprint}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function seedS2S(options: S2SSeedOptions = {}): S2SState {
  const nowMs = options.nowMs ?? Date.now();
  const daysLeft = options.certDaysLeft ?? DEFAULT_CERT_DAYS_LEFT;
  const serviceAccount = options.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT;
  const publicFacts = seededCertificate(nowMs, daysLeft);
  const registeredAt = nowMs - 30 * DAY;
  const startedAt = registeredAt + 60_000;

  const servers: SimServer[] = (options.asyncServers ?? DEFAULT_ASYNC_SERVERS).map((name) => {
    const stored: SimStoredCertificate = { ...publicFacts, keySpec: 1, hasPrivateKey: true, keyReaders: [serviceAccount.toLowerCase()] };
    return {
      name,
      store: new Map([[stored.thumbprint, stored]]),
      services: Object.fromEntries(ASYNC_SERVICES.map((service) => [service, { status: 'Running', startedAt }])) as SimServer['services'],
    };
  });
  const tenantId = options.tenantId ?? SIM_TENANT_ID;
  const state: S2SState = {
    serviceAccount,
    // A fresh deployment's tenant never allowed EWS for CRM: since 1 October 2026 Exchange Online blocks it.
    exchange: seedExchangeOnline(options.scenario === 'fresh' ? 'blocked' : 'configured'),
    servers,
    crmCertificate: { ...publicFacts, registeredAt },
    serverSettings: { principalId: S2S_PRINCIPAL_ID, metadataUrl: PUBLIC_METADATA_URL },
    organization: {
      id: options.organizationId ?? 'c0ffee00-0000-4000-8000-00000000c0de',
      uniqueName: options.orgName ?? 'contoso',
      s2sTenantId: tenantId,
    },
    tenant: { id: tenantId, displayName: 'Contoso' },
    servicePrincipal: {
      id: SIM_SERVICE_PRINCIPAL_ID,
      appId: CRM_APP_ID,
      displayName: 'Microsoft Dynamics CRM',
      servicePrincipalNames: [CRM_APP_ID, 'Microsoft.CRM'],
      keyCredentials: [
        {
          keyId: keyIdOf(publicFacts.thumbprint),
          type: 'AsymmetricX509Cert',
          usage: 'Verify',
          customKeyIdentifier: customKeyIdentifierOf(publicFacts.thumbprint),
          displayName: publicFacts.subject,
          startDateTime: publicFacts.notBefore,
          endDateTime: publicFacts.notAfter,
          key: publicFacts.derBase64,
        },
      ],
    },
    app: {
      tenantId,
      clientId: options.graphClientId ?? SIM_GRAPH_CLIENT_ID,
      clientSecret: options.graphClientSecret ?? DEFAULT_GRAPH_CLIENT_SECRET,
      certificates: [],
      permissions: [...SIM_GRAPH_PERMISSIONS],
    },
    lastS2SChangeAt: registeredAt,
    faults: [],
    breakage: { keyAccessNotApplied: false, keyCredentialDropped: false },
    agentHost: { isAdministrator: true, user: SIM_AGENT_USER },
    changeCounts: {},
  };
  if (options.scenario === 'fresh') {
    state.crmCertificate = null;
    for (const server of state.servers) server.store.clear();
    state.servicePrincipal.keyCredentials = [];
    state.serverSettings = { principalId: null, metadataUrl: null };
    state.organization.s2sTenantId = null;
  }
  return state;
}

/**
 * Puts `fresh` into `target` in place: the Graph simulator and tests hold the same S2SState
 * object, so a reset must not replace it.
 */
export function replaceS2SState(target: S2SState, fresh: S2SState): void {
  Object.assign(target, fresh);
}
