import { certFileNameSchema } from '../../jobs/cert-types.ts';
import {
  MAX_FILTER_ADDRESSES,
  domainSchema,
  emailAddressSchema,
  isStableFilter,
  profileNameSchema,
  type MailboxFilter,
  mailboxFilterSchema,
} from '../../jobs/mailbox-filter.ts';

/**
 * The strict grammar of what a person types. Everything a message says goes through `parseCommand`
 * (one parser, anchored patterns): command words are case-insensitive, values keep their case.
 */
export type Command =
  | { kind: 'help' }
  | { kind: 'status' }
  | { kind: 'approve-mailboxes'; filter: MailboxFilter }
  | { kind: 'test-mailboxes'; filter: MailboxFilter }
  | { kind: 'cert-status' }
  /** `file`: a PFX file name in the agent's CERT_DIR; absent: the agent's CERT_NEW_PFX. */
  | { kind: 'cert-rotate'; file?: string }
  | { kind: 'cert-watch-here' }
  /** The runbook (issue 4). `filter`: the mailboxes its mailbox steps cover (default `all`). */
  | { kind: 'run-setup'; dryRun: boolean; filter: MailboxFilter }
  | { kind: 'preflight' }
  | { kind: 'profile'; action: 'show' | 'create' }
  | { kind: 'tenant'; action: 'show' | 'set' }
  /** EWS access for CRM in Exchange Online: `show` (read-only) or `allow` (plan card, then an approver). */
  | { kind: 'ews'; action: 'show' | 'allow' }
  | { kind: 'configure-mailboxes'; filter: MailboxFilter }
  /** `sync this org only [filter]` (default `failed`): Test & Enable "from this organization only" for mailboxes whose ACT another organization holds. */
  | { kind: 'primary-org'; filter: MailboxFilter }
  | { kind: 'jobs' }
  | { kind: 'resume'; runId: string }
  | { kind: 'cancel'; runId: string }
  /** `audit [n]`: the latest n entries (1..AUDIT_MAX_SHOWN, default AUDIT_DEFAULT_SHOWN). */
  | { kind: 'audit'; count: number };

export type ParseFailure = {
  ok: false;
  code: 'COMMAND_UNKNOWN' | 'COMMAND_INVALID' | 'FILTER_INVALID' | 'CERT_FILE_INVALID';
  /** Said to the person: what was wrong (never echoes more than a short, cleaned excerpt). */
  message: string;
};

export type ParseResult = { ok: true; command: Command } | ParseFailure;

export const AUDIT_DEFAULT_SHOWN = 10;
export const AUDIT_MAX_SHOWN = 50;

export const runbookCommandForms: readonly string[] = [
  '`preflight`: check everything the set-up needs (read-only)',
  '`run setup [--dry-run] [all | email ends with @contoso.com | addresses]`: the whole server-side sync set-up as one runbook (default `all`); a second person approves; `--dry-run` only shows what would change. Filters on mailbox state (`pending`, `untested`, `failed`, `profile "…"`) are refused: the runbook changes that state as it goes',
  '`profile show|create`: the email server profile',
  '`tenant show|set`: the Exchange Online tenant ID on the organization',
  '`ews show|allow`: whether Exchange Online lets CRM use EWS (blocked since 1 October 2026 unless allowed, off for good on 1 April 2027), and allowing it',
  '`configure mailboxes [filter]`: profile and delivery methods of the mailboxes (default `all`)',
  '`sync this org only [filter]`: mailboxes whose appointments, contacts and tasks another CRM organization holds (ACT "configured with another org") sync from this one (orgmarkedasprimaryforexchangesync), then Test & Enable (default `failed`)',
  '`jobs`: the latest runs and their states',
  '`resume <run>` / `cancel <run>`: continue a halted run after the fix / stop a run',
  `\`audit [n]\`: the latest n audit entries (default ${AUDIT_DEFAULT_SHOWN}, at most ${AUDIT_MAX_SHOWN})`,
];

export function runbookCommandFormsText(): string {
  return `Set-up commands: ${runbookCommandForms.join('; ')}.`;
}

/** Longer than any command anyone would type (50 addresses of 254 characters fit). */
export const MAX_COMMAND_LENGTH = 14_000;

export const filterForms: readonly string[] = [
  '`pending`: not yet approved (the default for approve)',
  '`untested`: approved but the last Test & Enable did not succeed (the default for test)',
  '`failed`: the last Test & Enable failed',
  '`all`: every active mailbox',
  '`email ends with @contoso.com`',
  '`profile "Exchange Online"`',
  `a list of up to ${MAX_FILTER_ADDRESSES} addresses, separated by commas or spaces: \`alice@contoso.com, bob@contoso.com\``,
];

export const certCommandForms: readonly string[] = [
  '`cert status`: the S2S certificate in CRM, on the async servers and in Entra ID, and whether they agree',
  '`cert rotate [file.pfx]`: plan a rotation to the PFX in the agent\'s CERT_DIR (default: its CERT_NEW_PFX); a second person approves',
  '`cert watch here`: this conversation gets the certificate expiry reminders',
];

export function certCommandFormsText(): string {
  return `Certificate commands: ${certCommandForms.join('; ')}.`;
}

/** What a valid `cert rotate` file name is, and where the file must be. */
export function certFileNameRule(): string {
  return 'Write a plain file name (letters, digits, dot, dash, underscore; no folder; ending .pfx or .p12), such as `cert rotate s2s-2026.pfx`. The file must be in the agent\'s CERT_DIR folder on the agent host; without a name the agent uses its CERT_NEW_PFX.';
}

export function filterFormsText(): string {
  return `Valid filters: ${filterForms.join('; ')}.`;
}

/**
 * Removes what Teams leaves around the text: mentions (`<at>…</at>`), other HTML tags (links Teams
 * makes of addresses), entities, non-breaking spaces, curly quotes and extra whitespace.
 */
export function normaliseText(text: string | undefined): string {
  if (!text) return '';
  return text
    .replace(/<at\b[^>]*>[\s\S]*?<\/at>/gi, ' ')
    .replace(/<[^>]{0,500}>/g, ' ')
    .replace(/&nbsp;/gi, ' ')
    .replace(/&quot;/gi, '"')
    .replace(/&#39;|&apos;/gi, "'")
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/&amp;/gi, '&')
    .replace(/[\u201c\u201d\u201e\u201f]/g, '"')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\s\u00a0\u200b\u202f\ufeff]+/g, ' ')
    .trim();
}

export function parseCommand(rawText: string | undefined): ParseResult {
  if (rawText !== undefined && rawText.length > MAX_COMMAND_LENGTH) {
    return { ok: false, code: 'COMMAND_INVALID', message: `That message is too long to be a command (${rawText.length} characters).` };
  }
  const text = normaliseText(rawText);
  if (text === '' || /^(help|\?)$/i.test(text)) return { ok: true, command: { kind: 'help' } };
  if (/^status$/i.test(text)) return { ok: true, command: { kind: 'status' } };

  const mailboxCommand = /^(approve|test) mailbox(?:es)?(?: (.+))?$/i.exec(text);
  if (mailboxCommand) {
    const verb = (mailboxCommand[1] ?? '').toLowerCase() === 'approve' ? 'approve' : 'test';
    const rest = mailboxCommand[2];
    const filter = rest === undefined ? defaultFilter(verb) : parseFilter(rest);
    if (!filter.ok) return filter;
    return {
      ok: true,
      command: verb === 'approve' ? { kind: 'approve-mailboxes', filter: filter.filter } : { kind: 'test-mailboxes', filter: filter.filter },
    };
  }
  if (/^cert status$/i.test(text)) return { ok: true, command: { kind: 'cert-status' } };
  if (/^cert watch here$/i.test(text)) return { ok: true, command: { kind: 'cert-watch-here' } };
  const rotate = /^cert rotate(?: (.+))?$/i.exec(text);
  if (rotate) {
    const rest = rotate[1];
    if (rest === undefined) return { ok: true, command: { kind: 'cert-rotate' } };
    const file = certFileNameSchema.safeParse(rest);
    if (!file.success) {
      return { ok: false, code: 'CERT_FILE_INVALID', message: `"${excerpt(rest)}" is not a PFX file name. ${certFileNameRule()}` };
    }
    return { ok: true, command: { kind: 'cert-rotate', file: file.data } };
  }
  const runbook = parseRunbookCommand(text);
  if (runbook) return runbook;
  if (/^cert\b/i.test(text)) {
    return { ok: false, code: 'COMMAND_INVALID', message: `Write one of the certificate commands. ${certCommandFormsText()}` };
  }
  if (/^status\b/i.test(text)) {
    return { ok: false, code: 'COMMAND_INVALID', message: '`status` takes nothing after it.' };
  }
  if (/^(approve|test)\b/i.test(text)) {
    return { ok: false, code: 'COMMAND_INVALID', message: 'Write `approve mailboxes [filter]` or `test mailboxes [filter]`.' };
  }
  return { ok: false, code: 'COMMAND_UNKNOWN', message: `I don't know the command "${excerpt(text)}".` };
}

const RUN_ID = /^[a-z0-9]{8,32}$/;

/** The runbook commands (issue 4); undefined when the text is none of them. */
function parseRunbookCommand(text: string): ParseResult | undefined {
  const invalid = (message: string): ParseFailure => ({ ok: false, code: 'COMMAND_INVALID', message });
  if (/^preflight$/i.test(text)) return { ok: true, command: { kind: 'preflight' } };
  if (/^preflight\b/i.test(text)) return invalid('`preflight` takes nothing after it.');
  if (/^jobs$/i.test(text)) return { ok: true, command: { kind: 'jobs' } };
  if (/^jobs\b/i.test(text)) return invalid('`jobs` takes nothing after it.');

  const setup = /^run setup(?: (.+))?$/i.exec(text);
  if (setup) {
    let rest = (setup[1] ?? '').trim();
    let dryRun = false;
    const flag = /^--dry-run\b ?/i.exec(rest);
    if (flag) {
      dryRun = true;
      rest = rest.slice(flag[0].length).trim();
    }
    if (/(^|\s)--/.test(rest)) return invalid('The only option of `run setup` is `--dry-run`, written right after `run setup`.');
    const filter = rest === '' ? { ok: true as const, filter: { kind: 'all' } as MailboxFilter } : parseFilter(rest);
    if (!filter.ok) return filter;
    if (!isStableFilter(filter.filter)) return { ok: false, code: 'FILTER_INVALID', message: unstableSetupFilterMessage(filter.filter) };
    return { ok: true, command: { kind: 'run-setup', dryRun, filter: filter.filter } };
  }
  if (/^run\b/i.test(text)) return invalid('Write `run setup [--dry-run] [filter]`.');

  const profile = /^profile (show|create)$/i.exec(text);
  if (profile) return { ok: true, command: { kind: 'profile', action: (profile[1] ?? '').toLowerCase() === 'create' ? 'create' : 'show' } };
  if (/^profile\b/i.test(text)) return invalid('Write `profile show` or `profile create`.');

  const tenant = /^tenant (show|set)$/i.exec(text);
  if (tenant) return { ok: true, command: { kind: 'tenant', action: (tenant[1] ?? '').toLowerCase() === 'set' ? 'set' : 'show' } };
  if (/^tenant\b/i.test(text)) return invalid('Write `tenant show` or `tenant set` (the tenant ID comes from Microsoft Graph, never from what is typed).');

  const primary = /^sync (?:from )?this org(?:anization)? only(?: (.+))?$/i.exec(text);
  if (primary) {
    const rest = primary[1];
    const filter = rest === undefined ? { ok: true as const, filter: { kind: 'failed' } as MailboxFilter } : parseFilter(rest);
    if (!filter.ok) return filter;
    return { ok: true, command: { kind: 'primary-org', filter: filter.filter } };
  }
  if (/^sync\b/i.test(text)) return invalid('Write `sync this org only [filter]` (default: the mailboxes whose last Test & Enable failed).');

  const ews = /^ews (show|allow)$/i.exec(text);
  if (ews) return { ok: true, command: { kind: 'ews', action: (ews[1] ?? '').toLowerCase() === 'allow' ? 'allow' : 'show' } };
  if (/^ews\b/i.test(text)) return invalid('Write `ews show` (what Exchange Online allows) or `ews allow` (a plan an approver confirms). The app ID to allow is the agent\'s EWS_APP_ID, never what is typed.');

  const configure = /^configure mailbox(?:es)?(?: (.+))?$/i.exec(text);
  if (configure) {
    const rest = configure[1];
    const filter = rest === undefined ? { ok: true as const, filter: { kind: 'all' } as MailboxFilter } : parseFilter(rest);
    if (!filter.ok) return filter;
    return { ok: true, command: { kind: 'configure-mailboxes', filter: filter.filter } };
  }
  if (/^configure\b/i.test(text)) return invalid('Write `configure mailboxes [filter]`.');

  const control = /^(resume|cancel)(?: (\S+))?$/i.exec(text);
  if (control) {
    const verb = (control[1] ?? '').toLowerCase() === 'resume' ? 'resume' : 'cancel';
    const runId = (control[2] ?? '').toLowerCase();
    if (!RUN_ID.test(runId)) {
      return invalid(`Write \`${verb} <run>\` with the run id shown on the run's card or by \`jobs\` (8 to 32 letters and digits)${control[2] ? `; "${excerpt(control[2])}" is not one` : ''}.`);
    }
    return { ok: true, command: verb === 'resume' ? { kind: 'resume', runId } : { kind: 'cancel', runId } };
  }
  if (/^(resume|cancel)\b/i.test(text)) return invalid('Write `resume <run>` or `cancel <run>` with one run id.');

  const audit = /^audit(?: (\S+))?$/i.exec(text);
  if (audit) {
    if (audit[1] === undefined) return { ok: true, command: { kind: 'audit', count: AUDIT_DEFAULT_SHOWN } };
    const n = /^\d{1,4}$/.test(audit[1]) ? Number(audit[1]) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > AUDIT_MAX_SHOWN) return invalid(`Write \`audit [n]\` with n from 1 to ${AUDIT_MAX_SHOWN}.`);
    return { ok: true, command: { kind: 'audit', count: n } };
  }
  if (/^audit\b/i.test(text)) return invalid(`Write \`audit [n]\` with n from 1 to ${AUDIT_MAX_SHOWN}.`);
  return undefined;
}

/**
 * Why `run setup` refuses a filter on mailbox state: its mailbox steps re-read the selection one
 * after the other, and each step changes the very state such a filter selects on.
 */
function unstableSetupFilterMessage(filter: MailboxFilter): string {
  const why = (() => {
    switch (filter.kind) {
      case 'pending':
        return '`pending` would be empty once the runbook approves the mailboxes';
      case 'profile':
        return '`profile "…"` would be empty once the runbook moves the mailboxes to the new profile';
      default:
        return `\`${filter.kind}\` changes as soon as the runbook tests the mailboxes`;
    }
  })();
  return (
    `\`run setup\` takes only \`all\`, \`email ends with @contoso.com\` or a list of addresses: it configures, approves and tests the mailboxes one step after the other, ` +
    `and ${why}, so the later steps would find nothing. For those mailboxes use \`approve mailboxes pending\` or \`test mailboxes failed\` (or \`configure mailboxes …\`) instead.`
  );
}

function defaultFilter(verb: 'approve' | 'test'): { ok: true; filter: MailboxFilter } {
  return { ok: true, filter: verb === 'approve' ? { kind: 'pending' } : { kind: 'untested' } };
}

export function parseFilter(input: string): { ok: true; filter: MailboxFilter } | ParseFailure {
  const text = normaliseText(input);
  const invalid = (why: string): ParseFailure => ({ ok: false, code: 'FILTER_INVALID', message: `${why} ${filterFormsText()}` });

  const keyword = /^(pending|untested|failed|all)$/i.exec(text);
  if (keyword) {
    const kind = (keyword[1] ?? '').toLowerCase() as 'pending' | 'untested' | 'failed' | 'all';
    return checked({ kind }, invalid);
  }

  const domain = /^email ends with @?(\S+)$/i.exec(text);
  if (domain) {
    const parsed = domainSchema.safeParse(domain[1]);
    if (!parsed.success) return invalid(`"${excerpt(domain[1] ?? '')}" is not a domain name.`);
    return checked({ kind: 'domain', domain: parsed.data }, invalid);
  }
  if (/^email\b/i.test(text)) return invalid('Write the domain filter as `email ends with @contoso.com`.');

  const profile = /^profile "([^"]+)"$/i.exec(text);
  if (profile) {
    const parsed = profileNameSchema.safeParse((profile[1] ?? '').trim());
    if (!parsed.success) return invalid('That profile name is not valid.');
    return checked({ kind: 'profile', name: parsed.data }, invalid);
  }
  if (/^profile\b/i.test(text)) return invalid('Put the profile name in double quotes: `profile "Exchange Online"`.');

  // Otherwise it must be a list of addresses and nothing else.
  const tokens = text.split(/[\s,;]+/).filter((t) => t.length > 0);
  if (tokens.length > MAX_FILTER_ADDRESSES) {
    return invalid(`That is ${tokens.length} addresses; a list may hold at most ${MAX_FILTER_ADDRESSES} (use a domain or profile filter for more).`);
  }
  const addresses: string[] = [];
  for (const token of tokens) {
    const parsed = emailAddressSchema.safeParse(token);
    if (!parsed.success) return invalid(`"${excerpt(token)}" is not a filter I know nor an email address.`);
    if (!addresses.some((a) => a.toLowerCase() === parsed.data.toLowerCase())) addresses.push(parsed.data);
  }
  if (addresses.length === 0) return invalid('The filter is empty.');
  return checked({ kind: 'addresses', addresses }, invalid);
}

function checked(filter: MailboxFilter, invalid: (why: string) => ParseFailure): { ok: true; filter: MailboxFilter } | ParseFailure {
  const parsed = mailboxFilterSchema.safeParse(filter);
  return parsed.success ? { ok: true, filter: parsed.data } : invalid('That filter is not valid.');
}

/** A short, printable piece of what was typed, for the reply. */
function excerpt(text: string): string {
  const cleaned = text.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '').replace(/[`*_[\]<>]/g, '');
  return cleaned.length > 60 ? `${cleaned.slice(0, 57)}...` : cleaned;
}
