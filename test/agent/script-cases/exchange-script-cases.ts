import type { AnyScriptCase } from '../../support/script-case.ts';

/**
 * The Exchange Online scripts (stand-ins: test/support/powershell/exchange-standins.ps1, state
 * `exchange`: organizationConfig, mailboxes, moduleInstalled, connectError). A case is one entry:
 *   { name, script: 'Get-EwsAccess', params: { AppId, Organization, … },
 *     state: { exchange: { organizationConfig: { EwsEnabled: false, EwsAllowedAppIDs: [] } } },
 *     expect: { output: { … } } or { error: /…/ },
 *     calls: { of: ['Set-OrganizationConfig'], are: [{ command: 'Set-OrganizationConfig', args: { EwsEnabled: true } }] } }
 * powershell-run.test.ts fails for a table script without a case.
 */
const CRM_APP = '00000007-0000-0000-c000-000000000000';
const OTHER_APP = 'd3590ed6-52b3-4102-aeff-aad2292ab01c';
const connection = {
  AppId: '3f2e1d0c-b9a8-4765-9432-10fedcba9876',
  CertificateThumbprint: '5E0C1F2A3B4C5D6E7F8091A2B3C4D5E6F7081920',
  Organization: 'contoso.onmicrosoft.com',
  ExchangeEnvironmentName: 'O365Default',
};
const mailboxes = [
  { Identity: 'alice', PrimarySmtpAddress: 'alice@contoso.com', EwsEnabled: null },
  { Identity: 'bob', PrimarySmtpAddress: 'bob@contoso.com', EwsEnabled: false },
  { Identity: 'carol', PrimarySmtpAddress: 'carol@contoso.com', EwsEnabled: true },
];
const blockedTenant = { EwsEnabled: false, EwsAllowedAppIDs: [OTHER_APP], EwsApplicationAccessPolicy: null, EwsAllowList: [], EwsBlockList: [] };

export const exchangeScriptCases: AnyScriptCase[] = [
  {
    name: 'reads the organization policy (EwsAllowedAppIDs only with -RetrieveEwsOperationAccessPolicy) and the mailboxes with EwsEnabled False in one filtered query',
    script: 'Get-EwsAccess',
    params: connection,
    state: { exchange: { organizationConfig: { ...blockedTenant, EwsApplicationAccessPolicy: 'EnforceAllowList', EwsAllowList: ['OutlookService/*'] }, mailboxes } },
    expect: {
      output: {
        organizationEnabled: false,
        allowedAppIds: [OTHER_APP],
        applicationAccessPolicy: 'EnforceAllowList',
        allowList: ['OutlookService/*'],
        blockList: [],
        disabledMailboxes: ['bob@contoso.com'],
        disabledTruncated: false,
      },
    },
    calls: {
      of: ['Connect-ExchangeOnline', 'Get-OrganizationConfig', 'Get-CASMailbox', 'Disconnect-ExchangeOnline'],
      are: [
        { command: 'Connect-ExchangeOnline', args: { ...connection } },
        { command: 'Get-OrganizationConfig' },
        { command: 'Get-OrganizationConfig', args: { RetrieveEwsOperationAccessPolicy: true } },
        { command: 'Get-CASMailbox', args: { ResultSize: 'Unlimited', Filter: 'EwsEnabled -eq $false' } },
        { command: 'Disconnect-ExchangeOnline' },
      ],
    },
  },
  {
    name: 'reads an unset EwsEnabled as null and an empty allow-list as []',
    script: 'Get-EwsAccess',
    params: connection,
    state: { exchange: { organizationConfig: { EwsEnabled: null }, mailboxes: [] } },
    expect: { output: { organizationEnabled: null, allowedAppIds: [], applicationAccessPolicy: null, allowList: [], blockList: [], disabledMailboxes: [], disabledTruncated: false } },
  },
  {
    name: 'fails with Connect-ExchangeOnline\'s error (the app lacks Exchange.ManageAsApp)',
    script: 'Get-EwsAccess',
    params: connection,
    state: { exchange: { connectError: "The role assigned to application 3f2e1d0c isn't supported in this scenario." } },
    expect: { error: /^Get-EwsAccess: The role assigned to application 3f2e1d0c isn't supported/ },
  },
  {
    name: 'fails when the ExchangeOnlineManagement module is not installed',
    script: 'Get-EwsAccess',
    params: connection,
    state: { exchange: { moduleInstalled: false } },
    expect: { error: /^Get-EwsAccess: The specified module 'ExchangeOnlineManagement' was not loaded/ },
  },
  {
    name: 'allows CRM: writes the whole merged allow-list (the other app stays), then EwsEnabled, and reads both back',
    script: 'Set-EwsAccess',
    params: { ...connection, AllowAppId: CRM_APP },
    state: { exchange: { organizationConfig: blockedTenant } },
    expect: { output: { organizationEnabled: true, allowedAppIds: [OTHER_APP, CRM_APP], changed: ['EwsAllowedAppIDs', 'EwsEnabled'] } },
    calls: {
      of: ['Set-OrganizationConfig'],
      are: [
        { command: 'Set-OrganizationConfig', args: { EwsAllowedAppIDs: [OTHER_APP, CRM_APP] } },
        { command: 'Set-OrganizationConfig', args: { EwsEnabled: true } },
      ],
    },
  },
  {
    name: 'changes nothing when CRM is allowed already (the app ID in other letters is the same app)',
    script: 'Set-EwsAccess',
    params: { ...connection, AllowAppId: CRM_APP },
    state: { exchange: { organizationConfig: { EwsEnabled: true, EwsAllowedAppIDs: [CRM_APP.toUpperCase()] } } },
    expect: { output: { organizationEnabled: true, allowedAppIds: [CRM_APP.toUpperCase()], changed: [] } },
    calls: { of: ['Set-OrganizationConfig'], are: [] },
  },
  {
    name: 'enables EWS only on the listed mailboxes that have EwsEnabled False, and reports one that Exchange does not know',
    script: 'Set-MailboxEws',
    params: { ...connection, Mailboxes: 'alice@contoso.com,bob@contoso.com,nobody@contoso.com' },
    state: { exchange: { mailboxes } },
    expect: {
      output: {
        enabled: ['bob@contoso.com'],
        alreadyEnabled: ['alice@contoso.com'],
        failed: [{ address: 'nobody@contoso.com', message: "The operation couldn't be performed because object 'nobody@contoso.com' couldn't be found on 'AM0PR01A001DC01.EURPRD01.PROD.OUTLOOK.COM'." }],
      },
    },
    calls: { of: ['Set-CASMailbox'], are: [{ command: 'Set-CASMailbox', args: { Identity: 'bob@contoso.com', EwsEnabled: true } }] },
  },
];
