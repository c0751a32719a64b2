import { seedExchangeOnline } from '../../sim/exchange-online.ts';
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import forge from 'node-forge';
import { ASYNC_SERVICES, type S2SState, type SimKeyCredential } from '../../sim/s2s-state.ts';

/**
 * A small S2SState for the Graph simulator tests (independent of the CRM simulator's seeding), and
 * self-signed certificates made with node:crypto keys + node-forge.
 */
export interface TestCertificate {
  /** Certificate PEM. */
  certPem: string;
  /** PKCS#8 private key PEM. */
  keyPem: string;
  /** Base64 DER. */
  derBase64: string;
  /** SHA-1 of the DER, upper-case hex. */
  thumbprint: string;
  subject: string;
  notBefore: string;
  notAfter: string;
}

export function makeCertificate(options: { commonName: string; days?: number; bits?: number; startDaysAgo?: number }): TestCertificate {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: options.bits ?? 2048 });
  const keyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({ format: 'pem', type: 'pkcs1' }).toString());
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  const now = Date.now();
  cert.validity.notBefore = new Date(now - (options.startDaysAgo ?? 1) * 86_400_000);
  cert.validity.notAfter = new Date(now + (options.days ?? 365) * 86_400_000);
  const subject = [{ name: 'commonName', value: options.commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([{ name: 'keyUsage', digitalSignature: true, keyEncipherment: true }]);
  cert.sign(forgeKey, forge.md.sha256.create());
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
  return {
    certPem: forge.pki.certificateToPem(cert),
    keyPem,
    derBase64: der.toString('base64'),
    thumbprint: createHash('sha1').update(der).digest('hex').toUpperCase(),
    subject: `CN=${options.commonName}`,
    notBefore: cert.validity.notBefore.toISOString(),
    notAfter: cert.validity.notAfter.toISOString(),
  };
}

export function keyCredentialOf(cert: TestCertificate, keyId: string = randomUUID()): SimKeyCredential {
  return {
    keyId,
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    customKeyIdentifier: Buffer.from(cert.thumbprint, 'hex').toString('base64'),
    displayName: cert.subject,
    startDateTime: cert.notBefore,
    endDateTime: cert.notAfter,
    key: cert.derBase64,
  };
}

export const ALL_GRAPH_PERMISSIONS = ['Application.ReadWrite.All', 'Organization.Read.All', 'User.Read'];

export interface GraphTestState {
  state: S2SState;
  /** The certificate the helper app may sign client assertions with. */
  appCertificate: TestCertificate;
  /** The S2S certificate already on the CRM service principal. */
  currentS2S: TestCertificate;
}

export function buildGraphTestState(options: { permissions?: string[] } = {}): GraphTestState {
  const appCertificate = makeCertificate({ commonName: 'setup-agent-app' });
  const currentS2S = makeCertificate({ commonName: 'crm-s2s.contoso.com', days: 20 });
  const now = Date.now();
  const service = { status: 'Running' as const, startedAt: now };
  const state: S2SState = {
    serviceAccount: 'CONTOSO\\crmasync',
    exchange: seedExchangeOnline('configured'),
    servers: ['CRMAPP01', 'CRMAPP02'].map((name) => ({
      name,
      store: new Map(),
      services: { [ASYNC_SERVICES[0]]: { ...service }, [ASYNC_SERVICES[1]]: { ...service } },
    })),
    crmCertificate: null,
    serverSettings: { principalId: null, metadataUrl: null },
    organization: { id: randomUUID(), uniqueName: 'contoso', s2sTenantId: null },
    tenant: { id: randomUUID(), displayName: 'Contoso' },
    servicePrincipal: {
      id: randomUUID(),
      appId: '00000007-0000-0000-c000-000000000000',
      displayName: 'Microsoft Dynamics CRM',
      servicePrincipalNames: ['00000007-0000-0000-c000-000000000000/crm.contoso.com'],
      keyCredentials: [keyCredentialOf(currentS2S)],
    },
    app: {
      tenantId: '',
      clientId: randomUUID(),
      clientSecret: `sim~${randomBytes(24).toString('base64url')}`,
      certificates: [appCertificate.certPem],
      permissions: options.permissions ?? [...ALL_GRAPH_PERMISSIONS],
    },
    lastS2SChangeAt: now - 1000,
    faults: [],
    breakage: { keyAccessNotApplied: false, keyCredentialDropped: false },
    agentHost: { isAdministrator: true, user: 'CONTOSO\\crmsetup' },
    changeCounts: {},
  };
  state.app.tenantId = state.tenant.id;
  return { state, appCertificate, currentS2S };
}
