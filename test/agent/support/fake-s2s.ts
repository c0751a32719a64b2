import { readFile, stat } from 'node:fs/promises';
import { SetupError } from '../../../core/setup-error.ts';
import { readCertificateFile, subjectDerBase64 } from '../../../agent/certkit/kit.ts';
import { CRM_APP_ID, S2S_AUTHORITY_PRINCIPAL_ID, type CrmServicePrincipal, type GraphApi, type GraphKeyCredential, type KeyCredentialInput } from '../../../agent/adapters/graph/api.ts';
import type { PowershellApi, PowershellRunOptions } from '../../../agent/runtime/job-context.ts';
import { thumbprintOfDer, thumbprintOfKeyCredential } from '../../../agent/adapters/graph/key-credentials.ts';
import type { PowershellOutput, PowershellParams, PowershellScriptName } from '../../../agent/adapters/powershell/scripts.ts';
import { ExchangeScriptError, exchangeOnlineHandlers, seedExchangeOnline, SIM_INITIAL_DOMAIN, type SimExchangeOnline } from '../../../sim/exchange-online.ts';

/** A certificate as the fakes keep it (public facts and DER). */
export interface FakeCert {
  thumbprint: string;
  subject: string;
  derBase64: string;
  notBefore: string;
  notAfter: string;
}

interface Stored {
  cert: FakeCert;
  keySpec: 0 | 1 | 2;
  hasPrivateKey: boolean;
  readers: Set<string>;
}

/** GRAPH_CLIENT_ID of the handler tests' agent (Connect-ExchangeOnline -AppId). */
export const FAKE_GRAPH_CLIENT_ID = '3f2e1d0c-b9a8-4765-9432-10fedcba9876';

export const PUBLIC_METADATA_URL = 'https://accounts.accesscontrol.windows.net/metadata/json/1';

/**
 * An in-memory S2S world for handler tests: the async servers' stores, CRM's registration and
 * settings, the services (PowershellApi) and the CRM service principal (GraphApi). Every call is
 * logged; `fail` makes the next calls of a script (optionally on one server) fail.
 */
export class FakeS2S implements PowershellApi {
  readonly stores = new Map<string, Map<string, Stored>>();
  /** Per server: the tick of the last restart. */
  readonly restartedAt = new Map<string, number>();
  registered: FakeCert | null = null;
  settings: { principalId: string | null; metadataUrl: string | null } = { principalId: S2S_AUTHORITY_PRINCIPAL_ID, metadataUrl: PUBLIC_METADATA_URL };
  /** The tick of the last change the services must be restarted for. */
  lastChange = 0;
  /** The tenant's Exchange Online (EWS policy), as the simulator keeps it; allows CRM unless a test changes it. */
  exchange: SimExchangeOnline = seedExchangeOnline('configured');
  /** The app Connect-ExchangeOnline must be given (the agent's GRAPH_CLIENT_ID in the handler tests). */
  exchangeAppId = FAKE_GRAPH_CLIENT_ID;
  #tick = 1;
  readonly calls: { name: PowershellScriptName; params: Record<string, string>; pfxPassword?: string }[] = [];
  readonly faults: { name: string; server?: string; error: Error; times: number }[] = [];
  /** Grant-CertificateKeyAccess reports success but grants nothing. */
  keyAccessNotApplied = false;
  /** The KeySpec an import gives. */
  importKeySpec: 0 | 1 | 2 = 1;
  /** Files seen at Register-S2SCertificate (they must be gone afterwards). */
  readonly cerPaths: string[] = [];
  /** Files seen at Import-S2SCertificate, with their permission bits at that moment. */
  readonly pfxPaths: { path: string; mode: number }[] = [];
  /** Test-LocalAdministrator's answer. */
  isAdministrator = true;
  /** The organization Get-CrmOrganization knows (unique name, id) and its S2STenantId. */
  organization: { name: string; id: string; tenantId: string | null } = { name: 'contoso', id: '3c1d2e4f-0000-4000-8000-00000000c0de', tenantId: null };
  /** Runs when Import-S2SCertificate starts (before it reads the file): swap a file, change the state. */
  beforeImport: (() => Promise<void>) | undefined;
  readonly graph: FakeGraph;

  constructor(readonly serviceAccount: string, servers: readonly string[]) {
    for (const s of servers) {
      this.stores.set(s, new Map());
      this.restartedAt.set(s, 0);
    }
    this.graph = new FakeGraph();
  }

  /** Seeds a deployment that works with `cert`: registered, in every store, readable, a key credential, restarted. */
  seed(cert: FakeCert): void {
    this.registered = cert;
    for (const store of this.stores.values()) store.set(cert.thumbprint, { cert, keySpec: 1, hasPrivateKey: true, readers: new Set([this.serviceAccount.toLowerCase()]) });
    this.graph.sp.keyCredentials.push(this.graph.credentialOf(cert));
    for (const s of this.stores.keys()) this.restartedAt.set(s, this.#tick++);
  }

  fail(name: string, error: Error, options: { server?: string; times?: number } = {}): void {
    this.faults.push({ name, error, times: options.times ?? 1, ...(options.server ? { server: options.server } : {}) });
  }

  callsOf(name: PowershellScriptName, server?: string): number {
    return this.calls.filter((c) => c.name === name && (server === undefined || c.params['ComputerName'] === server)).length;
  }

  /** Whether server-side sync could authenticate (a compact version of the simulator's s2sHealth). */
  health(now: number): { ok: true } | { ok: false; text: string } {
    const cert = this.registered;
    if (!cert) return { ok: false, text: 'Failed Authentication: no certificate is registered.' };
    if (this.settings.principalId !== S2S_AUTHORITY_PRINCIPAL_ID || !this.settings.metadataUrl) return { ok: false, text: 'Failed Authentication: the S2S server settings are not set.' };
    for (const [server, store] of this.stores) {
      const s = store.get(cert.thumbprint);
      if (!s || !s.hasPrivateKey) return { ok: false, text: `Failed Authentication: private key not found on ${server}.` };
      if (s.keySpec !== 1) return { ok: false, text: `Failed Authentication: KeySpec ${s.keySpec} on ${server}.` };
      if (!s.readers.has(this.serviceAccount.toLowerCase())) return { ok: false, text: `Failed Authentication: Keyset does not exist on ${server}.` };
      if ((this.restartedAt.get(server) ?? 0) < this.lastChange) return { ok: false, text: `Failed Authentication: restart the services on ${server}.` };
    }
    const credential = this.graph.sp.keyCredentials.find((k) => k.key === cert.derBase64 && k.endDateTime !== null && Date.parse(k.endDateTime) > now);
    if (!credential) return { ok: false, text: 'HTTP 401: not a key credential of the Microsoft Dynamics CRM service principal.' };
    return { ok: true };
  }

  async run<N extends PowershellScriptName>(name: N, params: PowershellParams<N>, options: PowershellRunOptions = {}): Promise<PowershellOutput<N>> {
    const p = params as Record<string, string>;
    this.calls.push({ name, params: { ...p }, ...(options.pfxPassword === undefined ? {} : { pfxPassword: options.pfxPassword }) });
    const server = p['ComputerName'];
    const fault = this.faults.find((f) => f.times > 0 && f.name === name && (f.server === undefined || f.server === server));
    if (fault) {
      fault.times -= 1;
      throw fault.error;
    }
    return (await this.#script(name, p, options)) as PowershellOutput<N>;
  }

  #organization(name: string | undefined): void {
    if ((name ?? '').toLowerCase() !== this.organization.name.toLowerCase()) {
      throw new SetupError('POWERSHELL_FAILED', `Get-CrmOrganization : The organization '${name ?? ''}' does not exist.`);
    }
  }

  #store(server: string | undefined): Map<string, Stored> {
    const store = server === undefined ? undefined : this.stores.get(server);
    if (!store) throw new SetupError('POWERSHELL_FAILED', `Connecting to remote server ${server ?? '?'} failed.`);
    return store;
  }

  async #script(name: PowershellScriptName, p: Record<string, string>, options: PowershellRunOptions): Promise<unknown> {
    switch (name) {
      case 'Get-S2SCertificate':
        return { registered: this.registered !== null, derBase64: this.registered?.derBase64 ?? null };
      case 'Get-MachineCertificate': {
        const store = this.#store(p['ComputerName']);
        const wanted = p['Thumbprint'] ?? '';
        const s = store.get(wanted);
        // As the contract says: another certificate whose subject Name DER is -SubjectDer, whether or not `wanted` is there.
        const subjectDer = p['SubjectDer'] ?? '';
        const duplicateSubject = [...store.values()].some((o) => o.cert.thumbprint !== wanted && subjectDerBase64(o.cert.derBase64) === subjectDer);
        return {
          found: s !== undefined,
          keySpec: s?.keySpec ?? null,
          hasPrivateKey: s?.hasPrivateKey ?? false,
          serviceAccountCanRead: s?.readers.has((p['ServiceAccount'] ?? '').toLowerCase()) ?? false,
          duplicateSubject,
          services: [{ name: 'MSCRMAsyncService', status: 'Running' }, { name: 'MSCRMAsyncService$maintenance', status: 'Running' }],
        };
      }
      case 'Import-S2SCertificate': {
        const store = this.#store(p['ComputerName']);
        await this.beforeImport?.();
        const pfxPath = p['PfxPath'] ?? '';
        this.pfxPaths.push({ path: pfxPath, mode: (await stat(pfxPath)).mode & 0o777 });
        const read = readCertificateFile(await readFile(pfxPath), { fileName: 'x.pfx', ...(options.pfxPassword === undefined ? {} : { password: options.pfxPassword }), now: Date.now(), minDaysLeft: 0 });
        const cert: FakeCert = { thumbprint: read.summary.thumbprint, subject: read.summary.subject, derBase64: read.derBase64, notBefore: read.summary.notBefore, notAfter: read.summary.notAfter };
        if ([...store.values()].some((o) => o.cert.thumbprint !== cert.thumbprint && subjectDerBase64(o.cert.derBase64) === subjectDerBase64(cert.derBase64))) {
          throw new SetupError('POWERSHELL_FAILED', 'CertUtil: -importPFX command FAILED: private key not found');
        }
        const alreadyPresent = store.has(cert.thumbprint);
        store.set(cert.thumbprint, { cert, keySpec: this.importKeySpec, hasPrivateKey: true, readers: store.get(cert.thumbprint)?.readers ?? new Set() });
        this.lastChange = this.#tick++;
        return { thumbprint: cert.thumbprint, keySpec: this.importKeySpec, alreadyPresent };
      }
      case 'Grant-CertificateKeyAccess': {
        const s = this.#store(p['ComputerName']).get(p['Thumbprint'] ?? '');
        if (!s) throw new SetupError('POWERSHELL_FAILED', 'Cannot find the certificate.');
        const account = (p['ServiceAccount'] ?? '').toLowerCase();
        const alreadyHad = s.readers.has(account);
        if (!this.keyAccessNotApplied) s.readers.add(account);
        this.lastChange = this.#tick++;
        return { granted: true, alreadyHad };
      }
      case 'Register-S2SCertificate': {
        const path = p['CerPath'] ?? '';
        this.cerPaths.push(path);
        const der = (await readFile(path)).toString('base64');
        const thumbprint = thumbprintOfDer(der);
        const stored = [...this.stores.values()].map((s) => s.get(thumbprint)).find((s) => s !== undefined);
        this.registered = stored?.cert ?? { thumbprint, subject: '?', derBase64: der, notBefore: new Date(0).toISOString(), notAfter: new Date(8.64e15).toISOString() };
        this.lastChange = this.#tick++;
        return { thumbprint };
      }
      case 'Get-S2SServerSettings':
        return { ...this.settings };
      case 'Set-S2SServerSettings': {
        const changed = this.settings.principalId !== p['PrincipalId'] || this.settings.metadataUrl !== p['MetadataUrl'];
        this.settings = { principalId: p['PrincipalId'] ?? null, metadataUrl: p['MetadataUrl'] ?? null };
        this.lastChange = this.#tick++;
        return { changed };
      }
      case 'Test-LocalAdministrator':
        return { isAdministrator: this.isAdministrator, user: 'CONTOSO\\crmsetup' };
      case 'Get-S2STenantId':
        this.#organization(p['OrganizationName']);
        return { organizationId: this.organization.id, tenantId: this.organization.tenantId };
      case 'Set-S2STenantId': {
        this.#organization(p['OrganizationName']);
        const tenantId = p['TenantId'] ?? '';
        const changed = this.organization.tenantId !== tenantId;
        this.organization.tenantId = tenantId;
        if (changed) this.lastChange = this.#tick++;
        return { organizationId: this.organization.id, tenantId, changed };
      }
      case 'Get-EwsAccess':
      case 'Set-EwsAccess':
      case 'Set-MailboxEws':
        try {
          return exchangeOnlineHandlers[name](this.exchange, p, this.exchangeAppId);
        } catch (error) {
          if (error instanceof ExchangeScriptError) throw new SetupError('POWERSHELL_FAILED', error.message);
          throw error;
        }
      case 'Restart-CrmAsyncServices': {
        const server = p['ComputerName'] ?? '';
        this.#store(server);
        this.restartedAt.set(server, this.#tick++);
        return { services: [{ name: 'MSCRMAsyncService', status: 'Running' }, { name: 'MSCRMAsyncService$maintenance', status: 'Running' }] };
      }
    }
  }
}

/** The CRM service principal behind GraphApi. */
export class FakeGraph implements GraphApi {
  readonly sp: CrmServicePrincipal = { id: '5f2c7a10-0000-4000-8000-000000000001', appId: CRM_APP_ID, servicePrincipalNames: [CRM_APP_ID, 'Microsoft.CRM'], keyCredentials: [] };
  readonly writes: KeyCredentialInput[][] = [];
  readonly faults: { name: keyof GraphApi; error: Error; times: number }[] = [];
  /** The PATCH is accepted but new credentials are dropped. */
  dropNewCredentials = false;
  #next = 1;

  credentialOf(cert: FakeCert): GraphKeyCredential {
    return {
      keyId: `00000000-0000-4000-8000-${String(this.#next++).padStart(12, '0')}`,
      type: 'AsymmetricX509Cert',
      usage: 'Verify',
      customKeyIdentifier: Buffer.from(cert.thumbprint, 'hex').toString('base64'),
      displayName: cert.subject,
      startDateTime: cert.notBefore,
      endDateTime: cert.notAfter,
      key: cert.derBase64,
    };
  }

  thumbprints(): (string | null)[] {
    return this.sp.keyCredentials.map(thumbprintOfKeyCredential);
  }

  #fault(name: keyof GraphApi): void {
    const fault = this.faults.find((f) => f.name === name && f.times > 0);
    if (fault) {
      fault.times -= 1;
      throw fault.error;
    }
  }

  /** The tenant Graph /organization answers. */
  tenantId = '7a3b0c1d-0000-4000-8000-000000000000';
  /** The `roles` claim of the app's token. */
  roles: string[] = ['Application.ReadWrite.All', 'Organization.Read.All', 'User.Read.All'];

  getTenantId(): Promise<string> {
    this.#fault('getTenantId');
    return Promise.resolve(this.tenantId);
  }

  /** The tenant's initial domain (Graph /organization verifiedDomains isInitial). */
  initialDomain: string | null = SIM_INITIAL_DOMAIN;

  getInitialDomain(): Promise<string | null> {
    this.#fault('getInitialDomain');
    return Promise.resolve(this.initialDomain);
  }

  grantedRoles(): Promise<string[]> {
    this.#fault('grantedRoles');
    return Promise.resolve([...this.roles]);
  }

  getCrmServicePrincipal(): Promise<CrmServicePrincipal> {
    this.#fault('getCrmServicePrincipal');
    return Promise.resolve(structuredClone(this.sp));
  }

  setKeyCredentials(id: string, keyCredentials: KeyCredentialInput[]): Promise<void> {
    this.#fault('setKeyCredentials');
    if (id !== this.sp.id) return Promise.reject(new SetupError('GRAPH_REQUEST_FAILED', 'Resource not found.'));
    this.writes.push(structuredClone(keyCredentials));
    const kept = keyCredentials.filter((k) => k.keyId !== undefined || !this.dropNewCredentials);
    this.sp.keyCredentials = kept.map((k) => ({
      keyId: k.keyId ?? `00000000-0000-4000-8000-${String(this.#next++).padStart(12, '0')}`,
      type: k.type,
      usage: k.usage,
      customKeyIdentifier: k.customKeyIdentifier ?? null,
      displayName: k.displayName,
      startDateTime: k.startDateTime,
      endDateTime: k.endDateTime,
      key: k.key,
    }));
    return Promise.resolve();
  }

  setServicePrincipalNames(id: string, names: string[]): Promise<void> {
    this.#fault('setServicePrincipalNames');
    if (id !== this.sp.id) return Promise.reject(new SetupError('GRAPH_REQUEST_FAILED', 'Resource not found.'));
    this.sp.servicePrincipalNames = [...names];
    return Promise.resolve();
  }
}
