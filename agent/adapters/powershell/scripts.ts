import { z } from 'zod';
import { thumbprintSchema } from '../../../jobs/cert-types.ts';

/**
 * The PowerShell scripts the agent runs (agent/adapters/powershell/<name>.ps1), their parameters and the one
 * JSON object each prints on its last line of stdout. The runner (powershell-runner.ts) passes every
 * value as a named parameter (`-Name value`, one argv entry each): no command text is ever built
 * from input. The PFX password never goes on the command line: the runner puts it in the child's
 * environment as SETUP_PFX_PASSWORD, only for the scripts that need it.
 *
 * Server-specific scripts take -ComputerName; the script runs locally when it names this host and
 * through PowerShell remoting (Invoke-Command) otherwise.
 *
 * The simulator's stand-in executable (sim/bin/pwsh-sim.mjs) implements the same scripts against
 * simulated state. test/agent/adapters/powershell/parse.test.ts checks the param() blocks of the .ps1 files
 * against this table (PowerShell's own parser), and test/agent/adapters/powershell/run.test.ts runs every
 * script under pwsh against stand-ins of the cmdlets, checking its JSON with `output`.
 */
export const PFX_PASSWORD_ENV = 'SETUP_PFX_PASSWORD';

const serviceSchema = z.object({ name: z.string(), status: z.string() }).strict();

/**
 * Connect-ExchangeOnline app-only (d365-contract.md, "EWS access in Exchange Online"): the app
 * registration the agent uses for Graph (GRAPH_CLIENT_ID), the thumbprint of its certificate in the
 * agent account's store, the tenant's initial domain and the cloud's Exchange environment name.
 */
const exchangeConnection = ['AppId', 'CertificateThumbprint', 'Organization', 'ExchangeEnvironmentName'] as const;
const addressList = z.array(z.string().max(320));

export const powershellScripts = {
  /** Get-CrmCertificate, the S2STokenIssuer entry. */
  'Get-S2SCertificate': {
    params: [] as const,
    output: z.object({ registered: z.boolean(), derBase64: z.string().nullable() }).strict(),
  },
  /**
   * The certificate with this thumbprint in LocalMachine\My, its KeySpec and key ACL, and the async
   * services; duplicateSubject: another certificate in the store has this subject (checked even when
   * the thumbprint is not there yet, so a plan sees a same-subject renewal before importing it).
   * -SubjectDer is base64 of the subject Name's DER (X509Certificate2.SubjectName.RawData, from
   * cert-kit's subjectDerBase64), compared byte for byte: no name formatting on either side.
   */
  'Get-MachineCertificate': {
    params: ['ComputerName', 'Thumbprint', 'SubjectDer', 'ServiceAccount'] as const,
    output: z.object({
      found: z.boolean(),
      keySpec: z.number().int().nullable(),
      hasPrivateKey: z.boolean(),
      serviceAccountCanRead: z.boolean(),
      duplicateSubject: z.boolean(),
      services: z.array(serviceSchema),
    }).strict(),
  },
  /**
   * X509Certificate2Collection.Import (MachineKeySet | PersistKeySet) + X509Store LocalMachine\My Add,
   * the PFX bytes passed to the server through remoting (no copy on disk there); fails unless the key
   * reads back as KeySpec 1 (what it added is removed again when that fails). Refuses when another
   * certificate has the same subject Name DER. Password from SETUP_PFX_PASSWORD (an empty value is a
   * valid password).
   */
  'Import-S2SCertificate': {
    params: ['ComputerName', 'PfxPath'] as const,
    needsPassword: true,
    output: z.object({ thumbprint: thumbprintSchema, keySpec: z.number().int().nullable(), alreadyPresent: z.boolean() }).strict(),
  },
  /** Grants the account Read on the private key's container file (MachineKeys / Keys). */
  'Grant-CertificateKeyAccess': {
    params: ['ComputerName', 'Thumbprint', 'ServiceAccount'] as const,
    output: z.object({ granted: z.boolean(), alreadyHad: z.boolean() }).strict(),
  },
  /** Set-CrmCertificate -CertificateType S2STokenIssuer … -DataFile <cer>. */
  'Register-S2SCertificate': {
    params: ['CerPath'] as const,
    output: z.object({ thumbprint: thumbprintSchema }).strict(),
  },
  /** Get-CrmAdvancedSetting of the two S2S server settings. */
  'Get-S2SServerSettings': {
    params: [] as const,
    output: z.object({ principalId: z.string().nullable(), metadataUrl: z.string().nullable() }).strict(),
  },
  /** Set-CrmAdvancedSetting -Entity ServerSettings for the two S2S server settings. */
  'Set-S2SServerSettings': {
    params: ['PrincipalId', 'MetadataUrl'] as const,
    output: z.object({ changed: z.boolean() }).strict(),
  },
  /** Restart-Service MSCRMAsyncService and 'MSCRMAsyncService$maintenance'. */
  'Restart-CrmAsyncServices': {
    params: ['ComputerName'] as const,
    output: z.object({ services: z.array(serviceSchema) }).strict(),
  },
  /** The agent's own rights on this host: WindowsPrincipal.IsInRole(Administrator) of the current identity. */
  'Test-LocalAdministrator': {
    params: [] as const,
    output: z.object({ isAdministrator: z.boolean(), user: z.string() }).strict(),
  },
  /**
   * Get-CrmOrganization -Name <unique name> (its ID) and Get-CrmAdvancedSetting
   * -ConfigurationEntityName Organization -Setting S2STenantId -Id <org id>; tenantId null when unset.
   */
  'Get-S2STenantId': {
    params: ['OrganizationName'] as const,
    output: z.object({ organizationId: z.string(), tenantId: z.string().nullable() }).strict(),
  },
  /** Set-CrmAdvancedSetting -ID <org id> -ConfigurationEntityName Organization -Setting S2STenantId -Value <tenant id>, then reads it back. */
  'Set-S2STenantId': {
    params: ['OrganizationName', 'TenantId'] as const,
    output: z.object({ organizationId: z.string(), tenantId: z.string(), changed: z.boolean() }).strict(),
  },
  /**
   * Get-OrganizationConfig (EwsEnabled, EwsApplicationAccessPolicy, EwsAllowList, EwsBlockList),
   * Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy (EwsAllowedAppIDs) and one Get-CASMailbox
   * -Filter 'EwsEnabled -eq $false' for the whole tenant (Exchange Online PowerShell, read-only).
   */
  'Get-EwsAccess': {
    params: exchangeConnection,
    output: z.object({
      organizationEnabled: z.boolean().nullable(),
      allowedAppIds: z.array(z.string().max(64)).nullable(),
      applicationAccessPolicy: z.string().nullable(),
      allowList: z.array(z.string()),
      blockList: z.array(z.string()),
      disabledMailboxes: addressList,
      disabledTruncated: z.boolean(),
    }).strict(),
  },
  /** Set-OrganizationConfig -EwsAllowedAppIDs <merged list> and -EwsEnabled $true, each only when needed, read back. */
  'Set-EwsAccess': {
    params: [...exchangeConnection, 'AllowAppId'] as const,
    output: z.object({
      organizationEnabled: z.boolean().nullable(),
      allowedAppIds: z.array(z.string().max(64)),
      changed: z.array(z.enum(['EwsAllowedAppIDs', 'EwsEnabled'])),
    }).strict(),
  },
  /** Set-CASMailbox -Identity <address> -EwsEnabled $true for the listed mailboxes (at most 100) whose EwsEnabled is $false, read back. */
  'Set-MailboxEws': {
    params: [...exchangeConnection, 'Mailboxes'] as const,
    output: z.object({
      enabled: addressList,
      alreadyEnabled: addressList,
      failed: z.array(z.object({ address: z.string().max(320), message: z.string() }).strict()),
    }).strict(),
  },
} as const;

/** Set-MailboxEws takes at most this many addresses a run (its -Mailboxes pattern; Windows' command line holds 32,767 characters). */
export const MAILBOX_EWS_BATCH = 100;

export type PowershellScriptName = keyof typeof powershellScripts;
export type PowershellParams<N extends PowershellScriptName> = Record<(typeof powershellScripts)[N]['params'][number], string>;
export type PowershellOutput<N extends PowershellScriptName> = z.infer<(typeof powershellScripts)[N]['output']>;
