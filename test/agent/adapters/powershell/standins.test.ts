import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { lastLine, runWithStandIns, type StandInResult } from '../../../support/powershell-standins.ts';

/**
 * The stand-ins (test/support/powershell/) return the real shapes (d365-contract.md), and the way
 * the scripts read Get-CrmAdvancedSetting before (a fixture copy) fails against them.
 */
const fixture = (name: string): string => fileURLToPath(new URL(`../../../support/powershell/fixtures/${name}`, import.meta.url));
const PRINCIPAL = '00000001-0000-0000-c000-000000000000';
const ORG_ID = '5f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5';
const ENTITY_TYPE = 'Microsoft.Xrm.Sdk.Deployment.ConfigurationEntity';

let oldRead: StandInResult | undefined;
let shapes: StandInResult | undefined;

beforeAll(async () => {
  [oldRead, shapes] = await runWithStandIns([
    { script: fixture('old-read-setting.ps1'), params: { Name: 'S2SDefaultAuthorizationServerPrincipalId' }, state: { crm: { serverSettings: { S2SDefaultAuthorizationServerPrincipalId: PRINCIPAL } } } },
    {
      script: fixture('standin-shapes.ps1'),
      params: {},
      state: {
        crm: {
          serverSettings: { S2SDefaultAuthorizationServerPrincipalId: PRINCIPAL },
          organizations: [{ Id: ORG_ID, UniqueName: 'contoso' }],
          certificates: [{ CertificateType: 'S2STokenIssuer', Data: 'AA==', Thumbprint: 'A'.repeat(40) }],
        },
        exchange: {
          organizationConfig: { EwsEnabled: null, EwsApplicationAccessPolicy: 'EnforceAllowList', EwsAllowList: ['OC/*'], EwsAllowedAppIDs: ['app-1'] },
          mailboxes: [{ Identity: 'Ada Lovelace', PrimarySmtpAddress: 'ada@contoso.com', EwsEnabled: null }],
        },
      },
    },
  ]);
}, 60_000);

function json(result: StandInResult | undefined): Record<string, unknown> {
  if (!result) throw new Error('no result');
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(lastLine(result) ?? 'null') as Record<string, unknown>;
}

describe('the stand-ins of the CRM snap-in', () => {
  it('the old reading (the result or its .Value as the value) yields the entity\'s type name, not the setting', () => {
    expect(json(oldRead)).toEqual({ value: ENTITY_TYPE });
  });

  it('Get-CrmAdvancedSetting returns a ConfigurationEntity whose [string] is its type name, the value a KeyValuePair in .Attributes', () => {
    const out = json(shapes);
    expect(out.setting).toMatchObject({ type: ENTITY_TYPE, text: ENTITY_TYPE, properties: ['LogicalName', 'Id', 'Attributes'] });
    expect(out.settingLogicalName).toBe('ServerSettings');
    expect(out.attributesType).toBe('Microsoft.Xrm.Sdk.Deployment.AttributeCollection');
    expect(out.pairs).toEqual([{ type: expect.stringMatching(/^System\.Collections\.Generic\.KeyValuePair`2\[\[System\.String,.*\],\[System\.Object,/) as unknown, key: 'S2SDefaultAuthorizationServerPrincipalId', value: PRINCIPAL }]);
    expect(out.newEntityAttributes).toBe(true);
  });

  it('Get-CrmOrganization and Get-CrmCertificate return the Deployment types', () => {
    const out = json(shapes);
    expect(out.organization).toMatchObject({ type: 'Microsoft.Xrm.Sdk.Deployment.Organization', properties: ['Id', 'UniqueName', 'FriendlyName', 'State', 'Version'] });
    expect(out.organizationId).toBe(ORG_ID);
    expect(out.certificate).toMatchObject({ type: 'Microsoft.Xrm.Sdk.Deployment.Certificate' });
    expect((out.certificate as { properties: string[] }).properties).toEqual(expect.arrayContaining(['CertificateType', 'Data', 'Thumbprint', 'StoreName', 'StoreLocation']));
  });
});

describe('the stand-ins of Exchange Online PowerShell', () => {
  it('offers the module, and its cmdlets only after Connect-ExchangeOnline', () => {
    const out = json(shapes);
    expect(out.moduleName).toBe('ExchangeOnlineManagement');
    expect(out.beforeConnect).toBe('CommandNotFoundException');
  });

  it('Get-OrganizationConfig has the EWS settings, EwsAllowedAppIDs only with -RetrieveEwsOperationAccessPolicy', () => {
    const out = json(shapes);
    const properties = (out.config as { properties: string[] }).properties;
    expect(properties).toEqual(expect.arrayContaining(['EwsEnabled', 'EwsApplicationAccessPolicy', 'EwsAllowList', 'EwsBlockList']));
    expect(properties).not.toContain('EwsAllowedAppIDs');
    expect((out.withPolicy as { properties: string[] }).properties).toContain('EwsAllowedAppIDs');
    expect(out.configEwsEnabled).toBeNull();
    expect(out.configAllowList).toEqual(['OC/*']);
    expect(out.allowedAppIds).toEqual(['app-1']);
  });

  it('Get-CASMailbox returns Identity, PrimarySmtpAddress and EwsEnabled (null: inherit), and fails for an unknown mailbox', () => {
    const out = json(shapes);
    expect((out.mailbox as { properties: string[] }).properties).toEqual(expect.arrayContaining(['Identity', 'PrimarySmtpAddress', 'EwsEnabled']));
    expect(out.mailboxEwsEnabled).toBeNull();
    expect(out.missingMailbox).toMatch(/couldn't be found/);
  });

  it('Set-OrganizationConfig and Set-CASMailbox change what the Get- cmdlets return, and every call is recorded', () => {
    const out = json(shapes);
    expect(out.afterEwsEnabled).toBe(true);
    expect(out.afterAllowedAppIds).toEqual(['00000007-0000-0000-c000-000000000000', 'app-2']);
    expect(out.mailboxAfter).toBe(false);
    expect(shapes?.calls.map((c) => c.command)).toEqual(expect.arrayContaining(['Connect-ExchangeOnline', 'Set-OrganizationConfig', 'Set-CASMailbox', 'Disconnect-ExchangeOnline']));
    expect(shapes?.calls.find((c) => c.command === 'Connect-ExchangeOnline')?.args).toMatchObject({ AppId: 'app', Organization: 'contoso.onmicrosoft.com', ShowBanner: false });
  });
});
