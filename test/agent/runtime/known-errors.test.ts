import { describe, expect, it } from 'vitest';
import { FailureGroups } from '../../../agent/jobs/mailboxes/failure-groups.ts';
import { classifyFailure } from '../../../agent/runtime/known-errors.ts';
import { failureGroupSchema } from '../../../jobs/job-types.ts';

describe('classifyFailure', () => {
  it.each([
    ['The mailbox must be approved before it can process email.', 'approval-required'],
    ['Email processing for this mailbox requires approval by an administrator.', 'approval-required'],
    ['The remote server returned an error: (401) Unauthorized.', 'exchange-unauthorized'],
    ['The mailbox location could not be determined while sending the email message.', 'mailbox-location-unknown'],
    ['Crm.80048306: insufficient permissions for the mailbox owner.', 'insufficient-permissions'],
    ['0x80040220: Principal user (Id=1, type=8) is missing prvApproveRejectEmailAddress privilege', 'insufficient-permissions'],
    ['Appointments, contacts and tasks cannot be synchronized: the mailbox is configured with another org.', 'another-organization'],
    ['The request failed with HTTP status 403: Forbidden. X-EWS-Policy-Reason: EWS is disabled for this user or tenant.', 'ews-blocked'],
    ["X-EWS-Policy-Reason: EWS access for the application 00000007-0000-0000-c000-000000000000 is blocked by policy: it is not in the organization's EWS allow-list", 'ews-blocked'],
    ['HTTP 403 Forbidden: EWS is disabled for this user or tenant', 'ews-blocked'],
    ['The request was blocked by policy for EWS.', 'unknown'],
    ['Something nobody has seen before.', 'unknown'],
  ])('%s → %s', (text, cause) => {
    expect(classifyFailure(text).cause).toBe(cause);
  });

  it('gives the remediation the contract prescribes', () => {
    expect(classifyFailure('must be approved').remediation).toMatch(/Approve Email.*then.*Test & Enable/);
    expect(classifyFailure('(401) Unauthorized').remediation).toMatch(/license/);
    expect(classifyFailure('(401) Unauthorized').remediation).toMatch(/72 hours/);
    expect(classifyFailure('mailbox location could not be determined').remediation).toMatch(/autodiscover off.*EWS URLs/);
    expect(classifyFailure('configured with another org').remediation).toMatch(/this organization only/);
    expect(classifyFailure('Crm.80048306').remediation).toMatch(/owner.*Mailbox privileges/);
    const ews = classifyFailure('X-EWS-Policy-Reason: EWS is disabled for this user or tenant').remediation;
    expect(ews).toMatch(/EwsAllowedAppIDs/);
    expect(ews).toMatch(/Set-CASMailbox -EwsEnabled \$true/);
    expect(ews).toMatch(/24 hours/);
    expect(ews).toMatch(/1 April 2027/);
  });

  it('groups the 403 of a mailbox with a 401 text behind the EWS cause, not the 401', () => {
    expect(classifyFailure('(401) Unauthorized earlier; now HTTP status 403: Forbidden. X-EWS-Policy-Reason: EWS is disabled for this user or tenant').cause).toBe('ews-blocked');
  });
});

describe('FailureGroups', () => {
  it('groups by cause, counts, samples at most 10, and keeps the text only for unknown causes', () => {
    const groups = new FailureGroups();
    for (let i = 0; i < 12; i++) groups.add(`u${i}@contoso.com`, 'The remote server returned an error: (401) Unauthorized.');
    groups.add('a@contoso.com', 'Weird thing 1 happened to 00000000-0000-0000-0000-000000000001');
    groups.add('b@contoso.com', 'Weird thing 2 happened to 00000000-0000-0000-0000-000000000002');
    groups.add('c@contoso.com', 'Another weird thing');
    const list = groups.toArray();
    expect(groups.total).toBe(15);
    expect(list[0]).toMatchObject({ cause: 'exchange-unauthorized', count: 12 });
    expect(list[0]?.sample).toHaveLength(10);
    expect(list[0]?.example).toBeUndefined();
    const unknown = list.filter((g) => g.cause === 'unknown');
    expect(unknown.map((g) => g.count).sort()).toEqual([1, 2]);
    expect(unknown.find((g) => g.count === 2)?.example).toContain('Weird thing 1');
    for (const g of list) expect(failureGroupSchema.safeParse(g).success).toBe(true);
  });

  it('never returns more than 20 groups', () => {
    const groups = new FailureGroups();
    for (let i = 0; i < 40; i++) groups.add(`m${i}@contoso.com`, `distinct failure ${'x'.repeat(i)}`);
    const list = groups.toArray();
    expect(list.length).toBeLessThanOrEqual(20);
    expect(list.reduce((n, g) => n + g.count, 0)).toBe(40);
  });
});
