import type { AnyScriptCase } from '../../support/script-case.ts';
import { REGISTERED_CERT, S2S_CERT } from './test-certificates.ts';

const ORG_ID = '5f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const OTHER_TENANT = '0e3f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
const PRINCIPAL = '00000001-0000-0000-c000-000000000000';
const METADATA = 'https://accounts.accesscontrol.windows.net/metadata/json/1';
const PRINCIPAL_SETTING = 'S2SDefaultAuthorizationServerPrincipalId';
const METADATA_SETTING = 'S2SDefaultAuthorizationServerMetadataUrl';
const organizations = [{ Id: ORG_ID, UniqueName: 'contoso', FriendlyName: 'Contoso' }];

/** The Deployment Tools scripts (Microsoft.Crm.PowerShell stand-ins). */
export const crmScriptCases: AnyScriptCase[] = [
  {
    name: 'reads both server settings from the entities\' Attributes',
    script: 'Get-S2SServerSettings',
    params: {},
    state: { crm: { serverSettings: { [PRINCIPAL_SETTING]: PRINCIPAL, [METADATA_SETTING]: ` ${METADATA} ` } } },
    expect: { output: { principalId: PRINCIPAL, metadataUrl: METADATA } },
    calls: { of: ['Add-PSSnapin', 'Get-CrmAdvancedSetting'], are: [
      { command: 'Add-PSSnapin', args: { Name: ['Microsoft.Crm.PowerShell'] } },
      { command: 'Get-CrmAdvancedSetting', args: { ConfigurationEntityName: 'ServerSettings', Setting: PRINCIPAL_SETTING } },
      { command: 'Get-CrmAdvancedSetting', args: { ConfigurationEntityName: 'ServerSettings', Setting: METADATA_SETTING } },
    ] },
  },
  {
    name: 'reads unset and empty server settings as null',
    script: 'Get-S2SServerSettings',
    params: {},
    state: { crm: { serverSettings: { [METADATA_SETTING]: '' } } },
    expect: { output: { principalId: null, metadataUrl: null } },
  },
  {
    name: 'fails when the CRM snap-in is not installed',
    script: 'Get-S2SServerSettings',
    params: {},
    state: { crm: { snapinInstalled: false } },
    expect: { error: /^Get-S2SServerSettings: .*Microsoft\.Crm\.PowerShell' is not installed/ },
  },
  {
    name: 'writes a ServerSettings entity with both pairs when a value differs',
    script: 'Set-S2SServerSettings',
    params: { PrincipalId: PRINCIPAL, MetadataUrl: METADATA },
    state: { crm: { serverSettings: { [PRINCIPAL_SETTING]: PRINCIPAL, [METADATA_SETTING]: 'https://old.example/metadata' } } },
    expect: { output: { changed: true } },
    calls: { of: ['Set-CrmAdvancedSetting'], are: [{ command: 'Set-CrmAdvancedSetting', args: { Entity: {
      type: 'Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity',
      LogicalName: 'ServerSettings',
      Attributes: [{ Key: PRINCIPAL_SETTING, Value: PRINCIPAL }, { Key: METADATA_SETTING, Value: METADATA }],
    } } }] },
  },
  {
    name: 'writes nothing when both server settings already have the values',
    script: 'Set-S2SServerSettings',
    params: { PrincipalId: PRINCIPAL, MetadataUrl: METADATA },
    state: { crm: { serverSettings: { [PRINCIPAL_SETTING]: PRINCIPAL, [METADATA_SETTING]: METADATA } } },
    expect: { output: { changed: false } },
    calls: { of: ['Set-CrmAdvancedSetting'], are: [] },
  },
  {
    name: 'fails when the server settings read back differently',
    script: 'Set-S2SServerSettings',
    params: { PrincipalId: PRINCIPAL, MetadataUrl: METADATA },
    state: { crm: { ignoreWrites: true, serverSettings: {} } },
    expect: { error: /^Set-S2SServerSettings: Set-CrmAdvancedSetting finished but CRM reads back principal '' and metadata URL ''/ },
  },
  {
    name: 'reads the organization id and its S2STenantId',
    script: 'Get-S2STenantId',
    params: { OrganizationName: 'contoso' },
    state: { crm: { organizations, organizationSettings: { [ORG_ID]: { S2STenantId: TENANT } } } },
    expect: { output: { organizationId: ORG_ID, tenantId: TENANT } },
    calls: { of: ['Get-CrmOrganization', 'Get-CrmAdvancedSetting'], are: [
      { command: 'Get-CrmOrganization', args: { Name: 'contoso' } },
      { command: 'Get-CrmAdvancedSetting', args: { ConfigurationEntityName: 'Organization', Setting: 'S2STenantId', ID: ORG_ID } },
    ] },
  },
  {
    name: 'reads an unset S2STenantId as null',
    script: 'Get-S2STenantId',
    params: { OrganizationName: 'contoso' },
    state: { crm: { organizations } },
    expect: { output: { organizationId: ORG_ID, tenantId: null } },
  },
  {
    name: 'fails for an organization CRM does not have',
    script: 'Get-S2STenantId',
    params: { OrganizationName: 'fabrikam' },
    state: { crm: { organizations } },
    expect: { error: /^Get-S2STenantId: .*fabrikam/ },
  },
  {
    name: 'writes S2STenantId with -ID -ConfigurationEntityName Organization -Setting -Value and reads it back',
    script: 'Set-S2STenantId',
    params: { OrganizationName: 'contoso', TenantId: TENANT.toUpperCase() },
    state: { crm: { organizations, organizationSettings: { [ORG_ID]: { S2STenantId: OTHER_TENANT } } } },
    expect: { output: { organizationId: ORG_ID, tenantId: TENANT, changed: true } },
    calls: { of: ['Set-CrmAdvancedSetting'], are: [
      { command: 'Set-CrmAdvancedSetting', args: { ID: ORG_ID, ConfigurationEntityName: 'Organization', Setting: 'S2STenantId', Value: TENANT } },
    ] },
  },
  {
    name: 'writes nothing when S2STenantId is the same tenant in other letters',
    script: 'Set-S2STenantId',
    params: { OrganizationName: 'contoso', TenantId: TENANT },
    state: { crm: { organizations, organizationSettings: { [ORG_ID]: { S2STenantId: TENANT.toUpperCase() } } } },
    expect: { output: { organizationId: ORG_ID, tenantId: TENANT.toUpperCase(), changed: false } },
    calls: { of: ['Set-CrmAdvancedSetting'], are: [] },
  },
  {
    name: 'fails when S2STenantId reads back unchanged',
    script: 'Set-S2STenantId',
    params: { OrganizationName: 'contoso', TenantId: TENANT },
    state: { crm: { organizations, ignoreWrites: true, organizationSettings: { [ORG_ID]: { S2STenantId: OTHER_TENANT } } } },
    expect: { error: new RegExp(`^Set-S2STenantId: Set-CrmAdvancedSetting finished but CRM reads back S2STenantId '${OTHER_TENANT}' instead of '${TENANT}'`) },
  },
  {
    name: 'reads the S2STokenIssuer certificate\'s Data',
    script: 'Get-S2SCertificate',
    params: {},
    state: { crm: { certificates: [
      { CertificateType: 'AppFabricIssuer', Data: REGISTERED_CERT.derBase64 },
      { CertificateType: 'S2STokenIssuer', Data: S2S_CERT.derBase64, Thumbprint: S2S_CERT.thumbprint },
    ] } },
    expect: { output: { registered: true, derBase64: S2S_CERT.derBase64 } },
  },
  {
    name: 'reports no S2STokenIssuer as not registered',
    script: 'Get-S2SCertificate',
    params: {},
    state: { crm: { certificates: [{ CertificateType: 'AppFabricIssuer', Data: REGISTERED_CERT.derBase64 }] } },
    expect: { output: { registered: false, derBase64: null } },
  },
  {
    name: 'registers the .cer with Set-CrmCertificate and reads its thumbprint back',
    script: 'Register-S2SCertificate',
    params: (files) => ({ CerPath: files['s2s.cer'] ?? '' }),
    files: { 's2s.cer': Buffer.from(S2S_CERT.derBase64, 'base64') },
    state: { crm: { certificates: [{ CertificateType: 'S2STokenIssuer', Data: REGISTERED_CERT.derBase64 }] } },
    expect: { output: { thumbprint: S2S_CERT.thumbprint } },
    calls: { of: ['Set-CrmCertificate'], are: [{ command: 'Set-CrmCertificate', args: {
      CertificateType: 'S2STokenIssuer', StoreName: 'My', StoreLocation: 'LocalMachine', StoreFindType: 'FindBySubjectDistinguishedName',
    } }] },
  },
  {
    name: 'fails when CRM still has the old certificate registered',
    script: 'Register-S2SCertificate',
    params: (files) => ({ CerPath: files['s2s.cer'] ?? '' }),
    files: { 's2s.cer': Buffer.from(S2S_CERT.derBase64, 'base64') },
    state: { crm: { ignoreWrites: true, certificates: [{ CertificateType: 'S2STokenIssuer', Data: REGISTERED_CERT.derBase64 }] } },
    expect: { error: new RegExp(`^Register-S2SCertificate: .*CRM has ${REGISTERED_CERT.thumbprint} registered as S2STokenIssuer, not ${S2S_CERT.thumbprint}`) },
  },
];
