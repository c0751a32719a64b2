import { describe, expect, it } from 'vitest';
import { enableMailboxEws, ewsAccessReport, ewsAllowedFor, unknownEwsReport, type EwsRead } from '../../../../agent/adapters/exchange/ews.ts';
import { FakeCrm } from '../../support/fake-crm.ts';
import { testContext } from '../../support/job-context.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import { DEFAULT_EWS_APP_ID, ewsAccessReportSchema } from '../../../../jobs/ews-access.ts';

const NOW = Date.parse('2026-12-07T10:00:00Z');
const OTHER = 'd3590ed6-52b3-4102-aeff-aad2292ab01c';
const read = (over: Partial<EwsRead> = {}): EwsRead => ({
  organizationEnabled: true,
  allowedAppIds: [OTHER, DEFAULT_EWS_APP_ID],
  applicationAccessPolicy: null,
  allowList: [],
  blockList: [],
  disabledMailboxes: [],
  disabledTruncated: false,
  ...over,
});
const options = { appId: DEFAULT_EWS_APP_ID, selection: new Set(['alice@contoso.com', 'bob@contoso.com']), now: NOW };

describe('ewsAccessReport', () => {
  it('allowed: EwsEnabled true and the app on the list (in any letters); the days left are said', () => {
    const report = ewsAccessReport(read({ allowedAppIds: [DEFAULT_EWS_APP_ID.toUpperCase()] }), options);
    expect(ewsAccessReportSchema.parse(report)).toEqual(report);
    expect(report).toMatchObject({ verdict: 'allowed', appAllowed: true, daysLeft: 115, mailboxesChecked: 2, mailboxesDisabled: 0 });
    expect(report.detail).toMatch(/allows EWS for CRM.*115 days left until EWS in Exchange Online is switched off for good \(1 April 2027\)/);
    expect(report.fix).toBeUndefined();
  });

  it('blocked: says which part blocks (EwsEnabled, the allow-list) and that ews allow fixes it, within 24 hours', () => {
    const report = ewsAccessReport(read({ organizationEnabled: false, allowedAppIds: [OTHER] }), options);
    expect(report).toMatchObject({ verdict: 'blocked', organizationEnabled: false, appAllowed: false });
    expect(report.detail).toMatch(/EwsEnabled is False and CRM's app 00000007-0000-0000-c000-000000000000 is not in EwsAllowedAppIDs \(it lists 1 other app\)/);
    expect(report.detail).toMatch(/403 \(X-EWS-Policy-Reason\)/);
    expect(report.fix).toMatch(/`@setup ews allow`.*Set-OrganizationConfig.*up to 24 hours/);
    expect(report.fix).toMatch(/EWS usage report.*EWS_APP_ID/);
    expect(ewsAccessReport(read({ organizationEnabled: null }), options).detail).toMatch(/EwsEnabled is not set/);
    expect(ewsAccessReport(read({ allowedAppIds: [] }), options).detail).toMatch(/\(the list is empty\)/);
    expect(ewsAccessReport(read({ allowedAppIds: null }), options).verdict).toBe('blocked');
  });

  it('counts only the disabled mailboxes of the selection, and says how to enable them', () => {
    const report = ewsAccessReport(read({ disabledMailboxes: ['Bob@contoso.com', 'someone.else@contoso.com'] }), options);
    expect(report).toMatchObject({ verdict: 'allowed', mailboxesDisabled: 1, disabledSample: ['Bob@contoso.com'] });
    expect(report.detail).toMatch(/1 mailbox has EwsEnabled False on the mailbox itself \(Bob@contoso.com\): Exchange refuses EWS for it/);
    expect(report.fix).toMatch(/configure mailboxes.*Set-CASMailbox/);
    expect(ewsAccessReport(read({ disabledMailboxes: ['x@contoso.com'] }), { ...options, selection: null }).mailboxesDisabled).toBe(1);
  });

  it('names the older user-agent policy when it applies on top, and never calls that all good', () => {
    const report = ewsAccessReport(read({ applicationAccessPolicy: 'EnforceAllowList', allowList: ['OutlookService/*'] }), options);
    expect(report.detail).toMatch(/EnforceAllowList also applies \(user agents OutlookService\/\*\)/);
    expect(report).toMatchObject({ verdict: 'allowed', olderPolicyApplies: true });
    expect(report.fix).toMatch(/EwsAllowList/);
    expect(ewsAccessReport(read({ applicationAccessPolicy: 'EnforceBlockList', blockList: ['Bad/*'] }), options).olderPolicyApplies).toBe(true);
    expect(ewsAccessReport(read({ applicationAccessPolicy: 'EnforceBlockList', blockList: [] }), options).olderPolicyApplies).toBeUndefined();
  });

  it('EnforceAllowList with no user agent on it refuses every client: blocked, with the policy as the fix (ews allow does not change it)', () => {
    const report = ewsAccessReport(read({ applicationAccessPolicy: 'EnforceAllowList', allowList: [] }), options);
    expect(report).toMatchObject({ verdict: 'blocked', appAllowed: true, olderPolicyApplies: true });
    expect(report.detail).toMatch(/EwsApplicationAccessPolicy is EnforceAllowList with an empty EwsAllowList/);
    expect(report.fix).toMatch(/^Check the older user-agent policy/);
    expect(report.fix).not.toMatch(/ews allow/);
  });

  it('says when Exchange listed more disabled mailboxes than the agent reads', () => {
    expect(ewsAccessReport(read({ disabledTruncated: true, disabledMailboxes: ['bob@contoso.com'] }), options).detail).toMatch(/there may be more/);
  });

  it('after 1 April 2027: shut down whatever the tenant says, with the options Microsoft leaves', () => {
    const report = ewsAccessReport(read(), { ...options, now: Date.parse('2027-04-01T00:00:00Z') });
    expect(report).toMatchObject({ verdict: 'shut-down', daysLeft: 0 });
    expect(report.fix).toMatch(/Exchange Server.*Dynamics 365 online/);
  });

  it('unknown: the error as what was found, its hint as what to do', () => {
    const report = unknownEwsReport(new SetupError('CONFIG_MISSING', 'Exchange Online PowerShell is not configured on the agent: set EXO_CERT_THUMBPRINT.', { hint: 'Upload a certificate.' }), DEFAULT_EWS_APP_ID, NOW);
    expect(ewsAccessReportSchema.parse(report)).toMatchObject({ verdict: 'unknown', appAllowed: null, fix: 'Upload a certificate.' });
    expect(report.detail).toMatch(/cannot be checked: Exchange Online PowerShell is not configured/);
  });
});

describe('ewsAllowedFor', () => {
  it('needs both EwsEnabled true and the app on the list', () => {
    expect(ewsAllowedFor({ organizationEnabled: true, allowedAppIds: [DEFAULT_EWS_APP_ID] }, DEFAULT_EWS_APP_ID)).toBe(true);
    expect(ewsAllowedFor({ organizationEnabled: null, allowedAppIds: [DEFAULT_EWS_APP_ID] }, DEFAULT_EWS_APP_ID)).toBe(false);
    expect(ewsAllowedFor({ organizationEnabled: true, allowedAppIds: null }, DEFAULT_EWS_APP_ID)).toBe(false);
  });
});

describe('enableMailboxEws', () => {
  it('reports an address Set-MailboxEws would refuse on its own and runs no script for it (no batch fails with it)', async () => {
    // A context without PowerShell: a run of the script would throw; the refused address never gets that far.
    const ctx = testContext(new FakeCrm({ get: () => [] }));
    const outcome = await enableMailboxEws(ctx, ['r&d@contoso.com']);
    expect(outcome.enabled).toEqual([]);
    expect(outcome.failed).toEqual([{ address: 'r&d@contoso.com', message: expect.stringMatching(/Set-CASMailbox -Identity <address> -EwsEnabled \$true/) as unknown }]);
  });
});
