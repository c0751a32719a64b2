/**
 * What a mailbox failure means and what the admin should do, straight from the "Known errors and
 * what to tell the admin" table in shared/d365-contract.md. The patterns are matched against CRM
 * trace texts (Test & Enable) and against CRM error messages (Approve Email writes). The exact
 * wording CRM uses is partly unverified: the patterns are the phrases the contract quotes.
 */
export interface KnownError {
  cause: string;
  title: string;
  remediation: string;
}

interface KnownErrorRule extends KnownError {
  patterns: RegExp[];
}

export const knownErrorRules: readonly KnownErrorRule[] = [
  {
    cause: 'approval-required',
    title: 'The mailbox is not approved',
    remediation: 'Approve Email for these mailboxes (`@setup approve mailboxes ...`), then run Test & Enable again.',
    patterns: [/must be approved/i, /requires approval/i],
  },
  {
    cause: 'insufficient-permissions',
    title: 'Insufficient permissions (Crm.80048306)',
    remediation:
      "Check the mailbox owner and the owner's Mailbox privileges (Read and Write on Mailbox); Approve Email also needs the privilege prvApproveRejectEmailAddress for the account that approves.",
    patterns: [/Crm\.80048306/i, /prvApproveRejectEmailAddress/i, /insufficient permissions/i],
  },
  {
    cause: 'exchange-unauthorized',
    title: 'Exchange Online refused the mailbox (401 Unauthorized)',
    remediation:
      "Check that the mailbox's email address is the user's address in Exchange Online, that the mailbox uses an Exchange Online (Hybrid) email server profile, that the user has an Exchange Online license, and that the profile points at the right tenant. If the user was recreated in Exchange, the old identity can stay cached for up to 72 hours.",
    patterns: [/\(401\)\s*Unauthorized/i],
  },
  {
    cause: 'mailbox-location-unknown',
    title: 'The mailbox location could not be determined (autodiscover failed)',
    remediation:
      'Turn autodiscover off in the email server profile and enter the EWS URLs as the incoming and outgoing server locations, then run Test & Enable again.',
    patterns: [/mailbox location could not be determined/i],
  },
  {
    cause: 'another-organization',
    title: 'Appointments, contacts and tasks are synchronized with another organization',
    remediation: 'Run Test & Enable again with "sync items with Exchange from this organization only".',
    patterns: [/configured with another org/i],
  },
];

export const unknownError: KnownError = {
  cause: 'unknown',
  title: 'Not a known cause',
  remediation: "Read the mailbox's alerts in CRM (the example below is one of them) and fix what they say, then run the command again.",
};

/** Classifies an error or trace text; anything not in the table is the `unknown` cause. */
export function classifyFailure(text: string): KnownError {
  for (const rule of knownErrorRules) {
    if (rule.patterns.some((p) => p.test(text))) {
      return { cause: rule.cause, title: rule.title, remediation: rule.remediation };
    }
  }
  return unknownError;
}

export function isKnownCause(text: string): boolean {
  return classifyFailure(text).cause !== unknownError.cause;
}
