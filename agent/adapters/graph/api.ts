/**
 * What the certificate steps need from Microsoft Graph (d365-contract.md, "Microsoft Graph /
 * Entra ID"). Implemented by graph-client.ts with msal-node and microsoft-graph-client; tests drive
 * it against the simulator's Graph and token endpoints.
 */

/** The Dynamics CRM first-party application. */
export const CRM_APP_ID = '00000007-0000-0000-c000-000000000000';
/** The S2S authority principal (S2SDefaultAuthorizationServerPrincipalId). */
export const S2S_AUTHORITY_PRINCIPAL_ID = '00000001-0000-0000-c000-000000000000';

/** A keyCredentials entry as Graph returns it when one service principal is read with $select=keyCredentials. */
export interface GraphKeyCredential {
  keyId: string;
  type: string;
  usage: string;
  /** Base64; for certificates the SHA-1 thumbprint bytes. */
  customKeyIdentifier: string | null;
  displayName: string | null;
  startDateTime: string | null;
  endDateTime: string | null;
  /** Base64 DER; only present when one object is read with $select=keyCredentials. */
  key: string | null;
}

/** What is written back: existing entries keep their keyId and key; a new one has no keyId. */
export interface KeyCredentialInput {
  keyId?: string;
  type: 'AsymmetricX509Cert';
  usage: 'Verify';
  key: string;
  displayName: string;
  startDateTime: string;
  endDateTime: string;
  customKeyIdentifier?: string;
}

export interface CrmServicePrincipal {
  id: string;
  appId: string;
  servicePrincipalNames: string[];
  keyCredentials: GraphKeyCredential[];
}

/** The Graph application permissions the runbook needs (procedure.md §0; preflight graph-permissions). */
export const REQUIRED_GRAPH_ROLES = ['Application.ReadWrite.All', 'Organization.Read.All'] as const;

export interface GraphApi {
  /** GET /v1.0/organization → value[0].id */
  getTenantId(): Promise<string>;
  /** GET /v1.0/organization?$select=verifiedDomains → the name of the domain with isInitial (contoso.onmicrosoft.com); null when none is marked. */
  getInitialDomain(): Promise<string | null>;
  /**
   * The application permissions granted to the app (and admin-consented): the `roles` claim of its
   * app-only access token. No request beyond the token; a token that is not a JWT is GRAPH_REQUEST_FAILED.
   */
  grantedRoles(): Promise<string[]>;
  /** GET servicePrincipals?$filter=appId eq '<CRM_APP_ID>', then GET /servicePrincipals/{id}?$select=id,appId,servicePrincipalNames,keyCredentials */
  getCrmServicePrincipal(): Promise<CrmServicePrincipal>;
  /** PATCH /v1.0/servicePrincipals/{id} { keyCredentials } (replaces the whole list: read, merge, write). */
  setKeyCredentials(servicePrincipalId: string, keyCredentials: KeyCredentialInput[]): Promise<void>;
  /** PATCH /v1.0/servicePrincipals/{id} { servicePrincipalNames }. */
  setServicePrincipalNames(servicePrincipalId: string, names: string[]): Promise<void>;
}
