import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toODataFilter } from '../../jobs/mailbox-filter.ts';
import { CrmError } from '../../sim/crm-error.ts';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { mailboxMetadata, traceLogMetadata, type Row } from '../../sim/entity-metadata.ts';
import { compileFilter, parseFilter, tokenizeFilter } from '../../sim/odata-filter.ts';
import { errorOf, rows, simClient, type SimClient } from './sim-client.ts';

const profile = '0d6e4a57-0c3b-4b1e-8b8e-3f0b9a1c2d3e';

function mailbox(overrides: Row): Row {
  return {
    mailboxid: '00000000-0000-4000-8000-000000000001',
    name: 'Sean O\'Brien',
    emailaddress: "sean.o'brien@contoso.com",
    statecode: 0,
    emailrouteraccessapproval: 0,
    incomingemailstatus: 0,
    outgoingemailstatus: 0,
    actstatus: 0,
    testemailconfigurationscheduled: false,
    testmailboxaccesscompletedon: null,
    _emailserverprofile_value: profile,
    ...overrides,
  };
}

function matches(filter: string, row: Row): boolean {
  return compileFilter(filter, mailboxMetadata)(row);
}

function parseError(filter: string): CrmError {
  try {
    parseFilter(filter, mailboxMetadata);
  } catch (error) {
    if (error instanceof CrmError) return error;
    throw error;
  }
  throw new Error(`expected ${filter} to fail`);
}

describe('OData $filter parser (unit)', () => {
  it('tokenizes GUIDs, date-times, numbers, strings and identifiers', () => {
    const kinds = tokenizeFilter(`a eq 2026-11-22T10:00:00Z or b eq ${profile} or c eq -12 or d eq 'x''y' or e eq 2026-11-22`).map((t) => t.kind);
    expect(kinds).toEqual([
      'identifier', 'identifier', 'datetime', 'identifier',
      'identifier', 'identifier', 'guid', 'identifier',
      'identifier', 'identifier', 'number', 'identifier',
      'identifier', 'identifier', 'string', 'identifier',
      'identifier', 'identifier', 'date', 'eof',
    ]);
    expect(tokenizeFilter("'it''s'")[0]?.value).toBe("it's");
  });

  it('evaluates the filters the agent sends', () => {
    const pending = 'statecode eq 0 and (emailrouteraccessapproval eq 0 or emailrouteraccessapproval eq 2)';
    expect(matches(pending, mailbox({ emailrouteraccessapproval: 2 }))).toBe(true);
    expect(matches(pending, mailbox({ emailrouteraccessapproval: 1 }))).toBe(false);
    expect(matches(pending, mailbox({ statecode: 1 }))).toBe(false);
    expect(matches(`${pending} and endswith(emailaddress,'@contoso.com')`, mailbox({}))).toBe(true);
    expect(matches(`${pending} and endswith(emailaddress,'@fabrikam.com')`, mailbox({}))).toBe(false);
    expect(matches(`statecode eq 0 and _emailserverprofile_value eq ${profile.toUpperCase()}`, mailbox({}))).toBe(true);
    expect(matches(`statecode eq 0 and _emailserverprofile_value eq ${profile.replace(/^0/, '1')}`, mailbox({}))).toBe(false);
    const untested = 'statecode eq 0 and emailrouteraccessapproval eq 1 and (incomingemailstatus ne 1 or outgoingemailstatus ne 1)';
    expect(matches(untested, mailbox({ emailrouteraccessapproval: 1, incomingemailstatus: 1, outgoingemailstatus: 2 }))).toBe(true);
    expect(matches(untested, mailbox({ emailrouteraccessapproval: 1, incomingemailstatus: 1, outgoingemailstatus: 1 }))).toBe(false);
    const polling = 'testemailconfigurationscheduled eq true or testmailboxaccesscompletedon ge 2026-11-22T10:00:00Z';
    expect(matches(polling, mailbox({ testemailconfigurationscheduled: true }))).toBe(true);
    expect(matches(polling, mailbox({ testmailboxaccesscompletedon: '2026-11-22T10:00:00Z' }))).toBe(true);
    expect(matches(polling, mailbox({ testmailboxaccesscompletedon: '2026-11-22T09:59:59Z' }))).toBe(false);
    expect(matches(polling, mailbox({}))).toBe(false);
  });

  it('accepts what jobs/mailbox-filter.ts builds, including escaped quotes', () => {
    const filter = toODataFilter({ kind: 'addresses', addresses: ["sean.o'brien@contoso.com", 'b@x.com'] });
    expect(filter).toContain("'sean.o''brien@contoso.com'");
    expect(matches(filter, mailbox({}))).toBe(true);
    expect(matches(filter, mailbox({ emailaddress: 'b@x.com' }))).toBe(true);
    expect(matches(filter, mailbox({ emailaddress: 'c@x.com' }))).toBe(false);
    for (const kind of ['pending', 'untested', 'failed', 'all'] as const) {
      expect(() => compileFilter(toODataFilter({ kind }), mailboxMetadata)).not.toThrow();
    }
    expect(matches(toODataFilter({ kind: 'profile', name: 'X' }, { profileId: profile }), mailbox({}))).toBe(true);
  });

  it('compares strings case-insensitively, like CRM', () => {
    expect(matches("emailaddress eq 'SEAN.O''BRIEN@CONTOSO.COM'", mailbox({}))).toBe(true);
    expect(matches("startswith(name,'sean')", mailbox({}))).toBe(true);
    expect(matches("contains(emailaddress,'BRIEN@')", mailbox({}))).toBe(true);
    expect(matches("emailaddress gt 'a'", mailbox({}))).toBe(true);
    expect(matches("emailaddress lt 'a'", mailbox({}))).toBe(false);
  });

  it('supports not, null and precedence (and binds tighter than or)', () => {
    expect(matches('not (statecode eq 1)', mailbox({}))).toBe(true);
    expect(matches('not statecode eq 0', mailbox({}))).toBe(false);
    expect(matches('testmailboxaccesscompletedon eq null', mailbox({}))).toBe(true);
    expect(matches('testmailboxaccesscompletedon ne null', mailbox({}))).toBe(false);
    expect(matches('testmailboxaccesscompletedon gt 2020-01-01', mailbox({}))).toBe(false);
    // true or (false and false) = true; (true or false) and false = false
    expect(matches('statecode eq 0 or statecode eq 5 and statecode eq 6', mailbox({}))).toBe(true);
    expect(matches('(statecode eq 0 or statecode eq 5) and statecode eq 6', mailbox({}))).toBe(false);
    expect(matches('0 eq statecode and 1 gt statecode', mailbox({}))).toBe(true);
  });

  it('treats hostile strings as data, never as syntax', () => {
    const hostile = "x' or statecode eq 0 or emailaddress eq 'y";
    // Properly escaped, the whole text is one literal: no mailbox matches.
    const escaped = `emailaddress eq '${hostile.replace(/'/g, "''")}'`;
    expect(matches(escaped, mailbox({}))).toBe(false);
    expect(matches(escaped, mailbox({ emailaddress: hostile }))).toBe(true);
    expect(matches("emailaddress eq ')) or ((1 eq 1'", mailbox({}))).toBe(false);
    expect(matches("emailaddress eq '\\'", mailbox({ emailaddress: '\\' }))).toBe(true);
    // Unescaped, it really injects (as it would in CRM), so an agent that forgot to escape is caught.
    expect(matches(`emailaddress eq '${hostile}'`, mailbox({}))).toBe(true);
    expect(parseError("emailaddress eq 'x' or 1 eq 1 --'").status).toBe(400);
    expect(parseError("emailaddress eq 'unterminated").message).toContain('unterminated string literal');
    expect(parseError("emailaddress eq 'a''").message).toContain('unterminated');
    expect(matches("emailaddress eq 'a'''", mailbox({ emailaddress: "a'" }))).toBe(true);
  });

  it('refuses unknown attributes, bad syntax, wrong types and deep nesting with 400', () => {
    const unknown = parseError("foo eq 'x'");
    expect(unknown.status).toBe(400);
    expect(unknown.code).toBe('0x80060888');
    expect(unknown.message).toBe("Could not find a property named 'foo' on type 'Microsoft.Dynamics.CRM.mailbox'.");
    expect(parseError('StateCode eq 0').message).toContain("'StateCode'");
    expect(parseError('statecode eq').message).toMatch(/position 12/);
    expect(parseError('statecode eq 0 and').status).toBe(400);
    expect(parseError('statecode eq 0)').status).toBe(400);
    expect(parseError('(statecode eq 0').status).toBe(400);
    expect(parseError('statecode = 0').message).toContain("character '='");
    expect(parseError('statecode EQ 0').status).toBe(400);
    expect(parseError("statecode eq '0'").message).toContain("'Edm.Int32' and 'Edm.String'");
    expect(parseError("_emailserverprofile_value eq 'abc'").message).toContain('Edm.Guid');
    expect(parseError("endswith(statecode,'x')").message).toContain('No function signature');
    expect(parseError("substringof('x',name)").message).toContain("unknown function with name 'substringof'");
    expect(parseError("'a' eq 'a'").status).toBe(400);
    expect(parseError('statecode eq statuscode').status).toBe(400);
    expect(parseError('').status).toBe(400);
    expect(parseError(`${'('.repeat(200)}statecode eq 0${')'.repeat(200)}`).message).toContain('nested');
    expect(parseError('testmailboxaccesscompletedon ge 2026-13-45T99:00:00Z').status).toBe(400);
  });

  it('parses filters on other entities against their own attributes', () => {
    expect(compileFilter('createdon ge 2026-11-22T10:00:00Z', traceLogMetadata)({ createdon: '2026-11-22T10:00:01Z' })).toBe(true);
    expect(() => parseFilter('emailaddress eq null', traceLogMetadata)).toThrow(/on type 'Microsoft.Dynamics.CRM.tracelog'/);
  });
});

describe('$filter over HTTP', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 200, seed: 7 });
    crm = simClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });

  it('returns exactly the mailboxes the filter selects', async () => {
    const filter = "statecode eq 0 and (emailrouteraccessapproval eq 0 or emailrouteraccessapproval eq 2) and endswith(emailaddress,'@contoso.com')";
    const response = await crm.get('mailboxes', { $select: 'emailaddress,emailrouteraccessapproval,statecode', $filter: filter });
    expect(response.status).toBe(200);
    const got = rows(response).map((r) => r.mailboxid).sort();
    const expected = [...sim.state.mailboxes.values()]
      .filter((m) => m.statecode === 0 && (m.emailrouteraccessapproval === 0 || m.emailrouteraccessapproval === 2) && m.emailaddress?.toLowerCase().endsWith('@contoso.com'))
      .map((m) => m.mailboxid)
      .sort();
    expect(expected.length).toBeGreaterThan(10);
    expect(got).toEqual(expected);
    for (const row of rows(response)) expect(String(row.emailaddress)).not.toMatch(/@eu\.contoso\.com$/);
  });

  it('finds an address with an apostrophe through the doubled-quote escape', async () => {
    const target = [...sim.state.mailboxes.values()].find((m) => m.emailaddress?.includes("'"));
    expect(target).toBeDefined();
    const filter = toODataFilter({ kind: 'addresses', addresses: [target?.emailaddress ?? '', 'nobody@x.com'] });
    const response = await crm.get('mailboxes', { $select: 'emailaddress', $filter: filter });
    expect(rows(response).map((r) => r.mailboxid)).toEqual(target?.statecode === 0 ? [target.mailboxid] : []);
  });

  it('answers 400 with the CRM error body for an unknown attribute or bad syntax', async () => {
    const unknown = await crm.get('mailboxes', { $filter: "foo eq 'x'" });
    expect(unknown.status).toBe(400);
    expect(errorOf(unknown)).toEqual({ code: '0x80060888', message: "Could not find a property named 'foo' on type 'Microsoft.Dynamics.CRM.mailbox'." });
    const syntax = await crm.get('mailboxes', { $filter: "emailaddress eq 'x' or" });
    expect(syntax.status).toBe(400);
    expect(errorOf(syntax).message).toMatch(/position/);
    const hostile = await crm.get('mailboxes', { $filter: "emailaddress eq 'x' or 1 eq 1 --'" });
    expect(hostile.status).toBe(400);
  });
});
