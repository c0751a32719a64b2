import { z } from 'zod';
import { powershellScripts, type PowershellOutput, type PowershellScriptName } from '../agent/adapters/powershell/scripts.ts';
import { ASYNC_SERVICES, countChange, takeFault, type S2SState, type SimServer, type SimStoredCertificate } from './s2s-state.ts';
import { ExchangeScriptError, exchangeOnlineHandlers } from './exchange-online.ts';
import { CertificateFileError, PfxPasswordError, readCertificateFile, readPfx, subjectDerOf } from './sim-certificates.ts';

/**
 * `POST /_sim/powershell`: the scripts of agent/adapters/powershell, run against the simulated S2S state
 * instead of Windows. Import follows the real script: the PFX bytes and password go to the server,
 * the KeySpec is the one the PFX's key bag attributes give, and anything but 1 fails after the
 * certificate is in the store. The stand-in executable (sim/bin/pwsh-sim.mjs) is invoked exactly like
 * powershell.exe and sends `{ script, params, files, password }`: the -Param values, the PFX / CER
 * files named by PfxPath / CerPath (base64) and SETUP_PFX_PASSWORD. The answer is
 * `200 { output }` (the script's JSON) or `422 { error: { message } }` (what the script would
 * write on stderr before exiting 1). Parameter binding follows the .ps1 files (unknown or missing
 * parameters, the ValidatePattern checks), so a wrong call fails here as it would on Windows.
 */
export const powershellRequestSchema = z.object({
  script: z.string().min(1).max(100),
  params: z.record(z.string().max(4096)),
  /** Parameter name → base64 of the file it names. */
  files: z.record(z.string().max(1024 * 1024)).default({}),
  password: z.string().max(1024).nullable().optional(),
}).strict();
export type PowershellRequest = z.infer<typeof powershellRequestSchema>;

export type PowershellApiResult =
  /** hangMs: a `hangMs` fault: the script ran; its output is to be answered only after that long. */
  | { ok: true; output: PowershellOutput<PowershellScriptName>; hangMs?: number }
  | { ok: false; message: string };

class ScriptError extends Error {}

const THUMBPRINT = /^[0-9A-Fa-f]{40}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const ORGANIZATION_NAME = /^[A-Za-z0-9_]{1,100}$/;
const GUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const DOMAIN = /^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$/;
const MAILBOX_LIST = /^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(,[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+){0,99}$/;
const EXCHANGE_ENVIRONMENTS = ['O365Default', 'O365USGovGCCHigh', 'O365USGovDoD'];

function isScriptName(name: string): name is PowershellScriptName {
  return Object.hasOwn(powershellScripts, name);
}

/** PowerShell's parameter binding of the script's param() block, with its messages. */
function bind(name: PowershellScriptName, params: Record<string, string>): Record<string, string> {
  const declared: readonly string[] = powershellScripts[name].params;
  const bound: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    const param = declared.find((d) => d.toLowerCase() === key.toLowerCase());
    if (!param) throw new ScriptError(`${name}.ps1 : A parameter cannot be found that matches parameter name '${key}'.`);
    bound[param] = value;
  }
  const missing = declared.filter((d) => !bound[d]);
  if (missing.length > 0) throw new ScriptError(`${name}.ps1 : Cannot process command because of one or more missing mandatory parameters: ${missing.join(' ')}.`);
  const pattern = (param: string, regex: RegExp, text: string): void => {
    const value = bound[param];
    if (value !== undefined && !regex.test(value)) {
      throw new ScriptError(`${name}.ps1 : Cannot validate argument on parameter '${param}'. The argument "${value}" does not match the "${text}" pattern. Supply an argument that matches "${text}" and try the command again.`);
    }
  };
  pattern('Thumbprint', THUMBPRINT, '^[0-9A-Fa-f]{40}$');
  pattern('SubjectDer', BASE64, '^[A-Za-z0-9+/]+={0,2}$');
  pattern('PrincipalId', GUID, '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$');
  pattern('MetadataUrl', /^https:\/\//i, '^https://');
  pattern('TenantId', GUID, '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$');
  pattern('OrganizationName', ORGANIZATION_NAME, '^[A-Za-z0-9_]{1,100}$');
  pattern('AppId', GUID, '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$');
  pattern('AllowAppId', GUID, '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$');
  pattern('CertificateThumbprint', THUMBPRINT, '^[0-9A-Fa-f]{40}$');
  pattern('Organization', DOMAIN, '^[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63})+$');
  pattern('Mailboxes', MAILBOX_LIST, MAILBOX_LIST.source);
  const environment = bound.ExchangeEnvironmentName;
  if (environment !== undefined && !EXCHANGE_ENVIRONMENTS.includes(environment)) {
    throw new ScriptError(`${name}.ps1 : Cannot validate argument on parameter 'ExchangeEnvironmentName'. The argument "${environment}" does not belong to the set "${EXCHANGE_ENVIRONMENTS.join(',')}" specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command again.`);
  }
  return bound;
}

/** The server a -ComputerName names (NetBIOS name or FQDN, any case), or remoting's error. */
function serverNamed(state: S2SState, script: string, computerName: string): SimServer {
  const wanted = computerName.toLowerCase();
  const short = wanted.split('.')[0] ?? wanted;
  const server = state.servers.find((s) => s.name.toLowerCase() === wanted || s.name.toLowerCase() === short);
  if (!server) {
    throw new ScriptError(
      `${script} on ${computerName}: Connecting to remote server ${computerName} failed with the following error message : WinRM cannot process the request. ` +
        `The following error occurred while using Kerberos authentication: Cannot find the computer ${computerName}. Verify that the computer exists on the network and that the name provided is spelled correctly. ` +
        'For more information, see the about_Remote_Troubleshooting Help topic.',
    );
  }
  return server;
}

function fileOf(request: PowershellRequest, param: string, path: string): Buffer {
  const content = request.files[param];
  if (content === undefined) throw new ScriptError(`Cannot find path '${path}' because it does not exist.`);
  return Buffer.from(content, 'base64');
}

function services(server: SimServer): Array<{ name: string; status: string }> {
  return ASYNC_SERVICES.map((name) => ({ name, status: server.services[name].status }));
}

/**
 * Another certificate in the store with this subject: the scripts compare base64 of each stored
 * certificate's SubjectName.RawData with -ceq (exact), so the DER bytes decide, never the text.
 */
function otherWithSubject(server: SimServer, subjectDer: string, thumbprint: string): SimStoredCertificate | undefined {
  return [...server.store.values()].find((c) => subjectDerOf(c.derBase64) === subjectDer && c.thumbprint !== thumbprint.toUpperCase());
}

/**
 * Get-CrmOrganization -Name <unique name>: the organization (its unique name compared without
 * case, as CRM does), or the cmdlet's error (wording unverified).
 */
function organizationNamed(state: S2SState, script: string, name: string): S2SState['organization'] {
  if (name.toLowerCase() !== state.organization.uniqueName.toLowerCase()) {
    throw new ScriptError(`${script}: Get-CrmOrganization : The organization with the unique name '${name}' does not exist in this deployment.`);
  }
  return state.organization;
}

/** An Exchange Online script against the tenant's Exchange Online (exchange-online.ts), its errors as the script's. */
function exchangeScript<N extends keyof typeof exchangeOnlineHandlers>(name: N, state: S2SState, params: Record<string, string>): PowershellOutput<N> {
  try {
    return exchangeOnlineHandlers[name](state.exchange, params, state.app.clientId);
  } catch (error) {
    if (error instanceof ExchangeScriptError) throw new ScriptError(error.message);
    throw error;
  }
}

type Handler = (state: S2SState, params: Record<string, string>, request: PowershellRequest, now: number) => PowershellOutput<PowershellScriptName>;

const param = (params: Record<string, string>, name: string): string => params[name] ?? '';

const handlers: { [N in PowershellScriptName]: (state: S2SState, params: Record<string, string>, request: PowershellRequest, now: number) => PowershellOutput<N> } = {
  'Get-S2SCertificate': (state) => ({ registered: state.crmCertificate !== null, derBase64: state.crmCertificate?.derBase64 ?? null }),

  'Get-MachineCertificate': (state, params) => {
    const server = serverNamed(state, 'Get-MachineCertificate', param(params, 'ComputerName'));
    const thumbprint = param(params, 'Thumbprint').toUpperCase();
    const account = param(params, 'ServiceAccount').toLowerCase();
    // Checked against -SubjectDer whether or not the thumbprint is in the store yet.
    const duplicateSubject = otherWithSubject(server, param(params, 'SubjectDer'), thumbprint) !== undefined;
    const stored = server.store.get(thumbprint);
    if (!stored) {
      return { found: false, keySpec: null, hasPrivateKey: false, serviceAccountCanRead: false, duplicateSubject, services: services(server) };
    }
    return {
      found: true,
      keySpec: stored.hasPrivateKey ? stored.keySpec : null,
      hasPrivateKey: stored.hasPrivateKey,
      serviceAccountCanRead: stored.hasPrivateKey && stored.keyReaders.includes(account),
      duplicateSubject,
      services: services(server),
    };
  },

  'Import-S2SCertificate': (state, params, request) => {
    const computerName = param(params, 'ComputerName');
    const fail = (message: string): never => {
      throw new ScriptError(`Import-S2SCertificate on ${computerName}: ${message}`);
    };
    // An empty password is a valid one; only a missing variable is refused.
    const password = request.password ?? fail('SETUP_PFX_PASSWORD is not set: the agent passes the PFX password in this environment variable.');
    // The script reads the PFX here, then hands its bytes to the server (remoting), which imports them.
    const bytes = fileOf(request, 'PfxPath', param(params, 'PfxPath'));
    const server = serverNamed(state, 'Import-S2SCertificate', computerName);
    let pfx: ReturnType<typeof readPfx>;
    try {
      pfx = readPfx(bytes, password);
    } catch (error) {
      if (error instanceof PfxPasswordError || error instanceof CertificateFileError) fail(error.message.replace(/\n/g, ' '));
      throw error;
    }
    const { certificate } = pfx;
    if (!pfx.hasPrivateKey || pfx.keySpec === null) fail('The PFX holds no certificate with its private key: export the certificate again with its private key (.pfx).');
    const existing = server.store.get(certificate.thumbprint);
    if (existing && existing.hasPrivateKey && existing.keySpec === 1) {
      return { thumbprint: certificate.thumbprint, keySpec: 1, alreadyPresent: true };
    }
    const other = otherWithSubject(server, subjectDerOf(certificate.derBase64) ?? '', certificate.thumbprint);
    if (other) {
      fail(`LocalMachine\\My already holds another certificate with the subject '${certificate.subject}' (thumbprint ${other.thumbprint}): CRM would not find the right private key (private key not found). Remove that certificate first.`);
    }
    // X509Certificate2Collection.Import (MachineKeySet | PersistKeySet) + X509Store.Add: Windows keeps
    // the KeySpec the PFX's key bag asks for, in a new key container readable by Administrators and
    // SYSTEM only; the script then reads the KeySpec back and fails unless it is 1, removing what it
    // added (the certificate and its key; a certificate that was there before stays as it was).
    const keySpec = pfx.keySpec ?? 1;
    if (keySpec === 1) server.store.set(certificate.thumbprint, { ...certificate, keySpec, hasPrivateKey: true, keyReaders: [] });
    else {
      fail(`The certificate ${certificate.thumbprint} is in LocalMachine\\My with KeySpec ${keySpec}, but CRM needs KeySpec 1 (AT_KEYEXCHANGE). Import it on this server with: certutil -importpfx <file> AT_KEYEXCHANGE, then resume the rotation.`);
    }
    return { thumbprint: certificate.thumbprint, keySpec: 1, alreadyPresent: false };
  },

  'Grant-CertificateKeyAccess': (state, params) => {
    const computerName = param(params, 'ComputerName');
    const server = serverNamed(state, 'Grant-CertificateKeyAccess', computerName);
    const thumbprint = param(params, 'Thumbprint').toUpperCase();
    const stored = server.store.get(thumbprint);
    if (!stored) throw new ScriptError(`Grant-CertificateKeyAccess on ${computerName}: The certificate ${thumbprint} is not in LocalMachine\\My.`);
    if (!stored.hasPrivateKey) throw new ScriptError(`Grant-CertificateKeyAccess on ${computerName}: The certificate ${thumbprint} in LocalMachine\\My has no private key (private key not found).`);
    const account = param(params, 'ServiceAccount').toLowerCase();
    if (stored.keyReaders.includes(account)) return { granted: true, alreadyHad: true };
    if (!state.breakage.keyAccessNotApplied) stored.keyReaders.push(account);
    return { granted: true, alreadyHad: false };
  },

  'Register-S2SCertificate': (state, params, request, now) => {
    let certificate: ReturnType<typeof readCertificateFile>;
    try {
      certificate = readCertificateFile(fileOf(request, 'CerPath', param(params, 'CerPath')));
    } catch (error) {
      if (error instanceof CertificateFileError || error instanceof ScriptError) throw new ScriptError(`Register-S2SCertificate: ${error.message}`);
      throw error;
    }
    state.crmCertificate = { ...certificate, registeredAt: now };
    state.lastS2SChangeAt = now;
    return { thumbprint: certificate.thumbprint };
  },

  'Get-S2SServerSettings': (state) => ({ ...state.serverSettings }),

  'Set-S2SServerSettings': (state, params, _request, now) => {
    const principalId = param(params, 'PrincipalId');
    const metadataUrl = param(params, 'MetadataUrl');
    if (state.serverSettings.principalId === principalId && state.serverSettings.metadataUrl === metadataUrl) return { changed: false };
    state.serverSettings = { principalId, metadataUrl };
    state.lastS2SChangeAt = now;
    return { changed: true };
  },

  'Restart-CrmAsyncServices': (state, params, _request, now) => {
    const server = serverNamed(state, 'Restart-CrmAsyncServices', param(params, 'ComputerName'));
    for (const name of ASYNC_SERVICES) server.services[name] = { status: 'Running', startedAt: now };
    return { services: services(server) };
  },

  'Test-LocalAdministrator': (state) => ({ ...state.agentHost }),

  'Get-S2STenantId': (state, params) => {
    const organization = organizationNamed(state, 'Get-S2STenantId', param(params, 'OrganizationName'));
    return { organizationId: organization.id, tenantId: organization.s2sTenantId };
  },

  // Set-CrmAdvancedSetting stores the setting as given; the organization's S2STenantId is compared
  // without case (a GUID). Written only when it differs, then read back.
  'Get-EwsAccess': (state, params) => exchangeScript('Get-EwsAccess', state, params),
  'Set-EwsAccess': (state, params) => exchangeScript('Set-EwsAccess', state, params),
  'Set-MailboxEws': (state, params) => exchangeScript('Set-MailboxEws', state, params),

  'Set-S2STenantId': (state, params) => {
    const organization = organizationNamed(state, 'Set-S2STenantId', param(params, 'OrganizationName'));
    const tenantId = param(params, 'TenantId').toLowerCase();
    if (organization.s2sTenantId?.toLowerCase() === tenantId) return { organizationId: organization.id, tenantId: organization.s2sTenantId, changed: false };
    organization.s2sTenantId = tenantId;
    return { organizationId: organization.id, tenantId, changed: true };
  },
};

/** Whether a script run changed the state (counted in `changeCounts`); scripts not listed only read. */
const changed: { [N in PowershellScriptName]?: (output: PowershellOutput<N>) => boolean } = {
  'Import-S2SCertificate': (o) => !o.alreadyPresent,
  'Grant-CertificateKeyAccess': (o) => !o.alreadyHad,
  'Register-S2SCertificate': () => true,
  'Set-S2SServerSettings': (o) => o.changed,
  'Restart-CrmAsyncServices': () => true,
  'Set-S2STenantId': (o) => o.changed,
  'Set-EwsAccess': (o) => o.changed.length > 0,
  'Set-MailboxEws': (o) => o.enabled.length > 0,
};

/** Runs one script against the state. Never throws for a script failure: that is `{ ok: false }`. */
export function runSimulatedScript(state: S2SState, request: PowershellRequest, now: number): PowershellApiResult {
  const name = request.script.replace(/\.ps1$/i, '');
  try {
    if (!isScriptName(name)) throw new ScriptError(`The argument '${request.script}.ps1' to the -File parameter does not exist. Provide the path to an existing '.ps1' file as an argument to the -File parameter.`);
    const params = bind(name, request.params);
    const computerName = params.ComputerName;
    const fault = takeFault(state, name, computerName);
    if (fault && fault.hangMs === undefined) {
      const message = fault.message ?? 'The operation failed (simulated fault).';
      throw new ScriptError(computerName ? `${name} on ${computerName}: ${message}` : `${name}: ${message}`);
    }
    const handler = handlers[name] as Handler;
    // What the real script prints must satisfy the agent's schema: check it here too.
    const output = powershellScripts[name].output.parse(handler(state, params, request, now));
    const changedBy = changed[name] as ((o: typeof output) => boolean) | undefined;
    if (changedBy?.(output)) countChange(state, name);
    return fault?.hangMs === undefined ? { ok: true, output } : { ok: true, output, hangMs: fault.hangMs };
  } catch (error) {
    if (error instanceof ScriptError) return { ok: false, message: error.message };
    throw error;
  }
}
