import { describe, expect, it } from 'vitest';
import { MAX_FILTER_ADDRESSES } from '../../../jobs/mailbox-filter.ts';
import { normaliseText, parseCommand, runbookCommandForms, type ParseResult } from '../../../bot/inbound/command-parser.ts';

function ok(result: ParseResult) {
  if (!result.ok) throw new Error(`expected a command, got ${result.code}: ${result.message}`);
  return result.command;
}

describe('parseCommand', () => {
  it.each([
    ['help', { kind: 'help' }],
    ['HELP', { kind: 'help' }],
    ['', { kind: 'help' }],
    ['status', { kind: 'status' }],
    ['Status', { kind: 'status' }],
    ['approve mailboxes', { kind: 'approve-mailboxes', filter: { kind: 'pending' } }],
    ['test mailboxes', { kind: 'test-mailboxes', filter: { kind: 'untested' } }],
    ['approve mailboxes pending', { kind: 'approve-mailboxes', filter: { kind: 'pending' } }],
    ['APPROVE Mailboxes FAILED', { kind: 'approve-mailboxes', filter: { kind: 'failed' } }],
    ['test mailboxes all', { kind: 'test-mailboxes', filter: { kind: 'all' } }],
    ['test mailboxes untested', { kind: 'test-mailboxes', filter: { kind: 'untested' } }],
    ['approve mailboxes email ends with @Contoso.com', { kind: 'approve-mailboxes', filter: { kind: 'domain', domain: 'Contoso.com' } }],
    ['approve mailboxes Email Ends With contoso.co.uk', { kind: 'approve-mailboxes', filter: { kind: 'domain', domain: 'contoso.co.uk' } }],
    ['approve mailboxes profile "Exchange Online (EU)"', { kind: 'approve-mailboxes', filter: { kind: 'profile', name: 'Exchange Online (EU)' } }],
    ['approve mailboxes PROFILE \u201cExchange Online\u201d', { kind: 'approve-mailboxes', filter: { kind: 'profile', name: 'Exchange Online' } }],
    ['test mailboxes alice@contoso.com', { kind: 'test-mailboxes', filter: { kind: 'addresses', addresses: ['alice@contoso.com'] } }],
    ["test mailboxes Alice@contoso.com, bob@contoso.com;o'brien@contoso.com  Alice@CONTOSO.com", { kind: 'test-mailboxes', filter: { kind: 'addresses', addresses: ['Alice@contoso.com', 'bob@contoso.com', "o'brien@contoso.com"] } }],
  ])('parses %j', (text, expected) => {
    expect(ok(parseCommand(text))).toEqual(expected);
  });

  it('strips Teams leftovers: <at> mentions, &nbsp;, tags and extra whitespace', () => {
    expect(ok(parseCommand('<at>setup</at>&nbsp; approve\u00a0mailboxes   <a href="mailto:a@contoso.com">a@contoso.com</a>'))).toEqual({
      kind: 'approve-mailboxes',
      filter: { kind: 'addresses', addresses: ['a@contoso.com'] },
    });
    expect(normaliseText('<p>status</p>\n')).toBe('status');
  });

  it.each([
    "approve mailboxes ' or 1 eq 1",
    "approve mailboxes alice@contoso.com' or 1 eq 1",
    'approve mailboxes emailaddress eq \'x\' or statecode ne 0',
    'approve mailboxes email ends with @contoso.com or 1 eq 1',
    "approve mailboxes email ends with @contoso.com')",
    'approve mailboxes profile "a" or "b"',
    'approve mailboxes profile Exchange',
    'approve mailboxes profile ""',
    'test mailboxes $filter=statecode eq 0',
    'test mailboxes pending; drop',
    'test mailboxes contains(emailaddress,\'a\')',
    'approve mailboxes <script>alert(1)</script>x',
    'approve mailboxes all pending',
  ])('rejects hostile or malformed filter %j with the valid forms', (text) => {
    const result = parseCommand(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.code).toBe('FILTER_INVALID');
    expect(result.message).toContain('email ends with @contoso.com');
    expect(result.message).toContain('profile "Exchange Online"');
  });

  it('rejects a list over the limit', () => {
    const list = Array.from({ length: MAX_FILTER_ADDRESSES + 1 }, (_, i) => `u${i}@contoso.com`).join(', ');
    const result = parseCommand(`approve mailboxes ${list}`);
    expect(result).toMatchObject({ ok: false, code: 'FILTER_INVALID' });
    const atLimit = parseCommand(`approve mailboxes ${list.split(', ').slice(0, MAX_FILTER_ADDRESSES).join(', ')}`);
    expect(atLimit.ok).toBe(true);
  });

  it('rejects an overly long message', () => {
    expect(parseCommand(`approve mailboxes ${'a'.repeat(20_000)}`)).toMatchObject({ ok: false, code: 'COMMAND_INVALID' });
  });

  it('answers unknown commands (substrings of commands are not commands)', () => {
    for (const text of ['rerun status', 'status now', 'helpme', 'approve', 'approvemailboxes', 'please approve mailboxes', 'unapprove mailboxes']) {
      expect(parseCommand(text).ok, text).toBe(false);
    }
    expect(parseCommand('what is this')).toMatchObject({ ok: false, code: 'COMMAND_UNKNOWN' });
  });

  it('keeps control characters and markup out of the echoed text', () => {
    const result = parseCommand('do \u0007 `this` *now*');
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.message).not.toContain('\u0007');
      expect(result.message).not.toMatch(/[`*]/);
    }
  });

  it('run setup takes only filters that its own steps do not change', () => {
    expect(ok(parseCommand('run setup'))).toEqual({ kind: 'run-setup', dryRun: false, filter: { kind: 'all' } });
    expect(ok(parseCommand('run setup --dry-run all'))).toEqual({ kind: 'run-setup', dryRun: true, filter: { kind: 'all' } });
    expect(ok(parseCommand('run setup email ends with @contoso.com'))).toEqual({ kind: 'run-setup', dryRun: false, filter: { kind: 'domain', domain: 'contoso.com' } });
    expect(ok(parseCommand('run setup --dry-run a@contoso.com, b@contoso.com'))).toEqual({ kind: 'run-setup', dryRun: true, filter: { kind: 'addresses', addresses: ['a@contoso.com', 'b@contoso.com'] } });
    for (const [filter, why] of [
      ['pending', 'approves'],
      ['untested', 'tests'],
      ['failed', 'tests'],
      ['profile "Old Profile"', 'new profile'],
    ] as const) {
      for (const text of [`run setup ${filter}`, `run setup --dry-run ${filter}`]) {
        const result = parseCommand(text);
        expect(result, text).toMatchObject({ ok: false, code: 'FILTER_INVALID' });
        if (result.ok) continue;
        expect(result.message).toContain('takes only `all`, `email ends with @contoso.com` or a list of addresses');
        expect(result.message).toContain(why);
        expect(result.message).toContain('`approve mailboxes pending` or `test mailboxes failed`');
      }
    }
    // The same filters still work for the commands that select on state.
    expect(ok(parseCommand('configure mailboxes profile "Old Profile"'))).toEqual({ kind: 'configure-mailboxes', filter: { kind: 'profile', name: 'Old Profile' } });
    expect(runbookCommandForms.find((f) => f.startsWith('`run setup'))).toContain('are refused');
  });
});
