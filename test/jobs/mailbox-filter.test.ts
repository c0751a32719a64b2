import { describe, expect, it } from 'vitest';
import { mailboxFilterSchema, odataGuid, odataString, toODataFilter, type MailboxFilter } from '../../jobs/mailbox-filter.ts';

describe('odataString', () => {
  it('quotes and doubles single quotes', () => {
    expect(odataString("O'Brien")).toBe("'O''Brien'");
    expect(odataString("x' or 1 eq 1 or 'a")).toBe("'x'' or 1 eq 1 or ''a'");
    expect(odataString('')).toBe("''");
  });
});

describe('odataGuid', () => {
  it('accepts only a GUID', () => {
    expect(odataGuid('AAAAAAAA-1111-2222-3333-444444444444')).toBe('aaaaaaaa-1111-2222-3333-444444444444');
    expect(() => odataGuid("aaaaaaaa-1111-2222-3333-444444444444 or 1 eq 1")).toThrow();
    expect(() => odataGuid('')).toThrow();
  });
});

describe('toODataFilter', () => {
  const cases: Array<[MailboxFilter, string]> = [
    [{ kind: 'pending' }, 'statecode eq 0 and (emailrouteraccessapproval eq 0 or emailrouteraccessapproval eq 2)'],
    [{ kind: 'untested' }, 'statecode eq 0 and emailrouteraccessapproval eq 1 and (incomingemailstatus ne 1 or outgoingemailstatus ne 1)'],
    [{ kind: 'failed' }, 'statecode eq 0 and (incomingemailstatus eq 2 or outgoingemailstatus eq 2 or actstatus eq 2)'],
    [{ kind: 'all' }, 'statecode eq 0'],
    [{ kind: 'domain', domain: 'contoso.com' }, "statecode eq 0 and endswith(emailaddress,'@contoso.com')"],
    [
      { kind: 'addresses', addresses: ['a@contoso.com', "o'brien@contoso.com"] },
      "statecode eq 0 and (emailaddress eq 'a@contoso.com' or emailaddress eq 'o''brien@contoso.com')",
    ],
  ];
  it.each(cases)('%j', (filter, expected) => {
    expect(toODataFilter(filter)).toBe(expected);
  });

  it('uses the resolved profile id, never the name', () => {
    const text = toODataFilter({ kind: 'profile', name: "Ex' or 1 eq 1" }, { profileId: '0f8fad5b-d9cb-469f-a165-70867728950e' });
    expect(text).toBe('statecode eq 0 and _emailserverprofile_value eq 0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(() => toODataFilter({ kind: 'profile', name: 'Exchange Online' })).toThrow(/profileId/);
  });

  it('rejects hostile values before they reach OData', () => {
    const hostile: unknown[] = [
      { kind: 'domain', domain: "contoso.com') or (1 eq 1" },
      { kind: 'domain', domain: 'contoso.com or statecode eq 1' },
      { kind: 'addresses', addresses: ["a@b.com' or emailaddress ne '"] },
      { kind: 'addresses', addresses: ['not-an-address'] },
      { kind: 'addresses', addresses: [] },
      { kind: 'addresses', addresses: Array.from({ length: 51 }, (_, i) => `u${i}@contoso.com`) },
      { kind: 'profile', name: 'a"b' },
      { kind: 'profile', name: '' },
      { kind: 'raw', text: 'statecode eq 1' },
    ];
    for (const value of hostile) {
      expect(mailboxFilterSchema.safeParse(value).success, JSON.stringify(value)).toBe(false);
      expect(() => toODataFilter(value as MailboxFilter)).toThrow();
    }
  });
});
