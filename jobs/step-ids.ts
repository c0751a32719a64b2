/**
 * The runbook's own step ids (issue 4), apart from the certificate steps it shares with the rotation.
 * Kept in a file of their own so cert-types.ts (the step state schema) and runbook-types.ts can both
 * use them without importing each other.
 */
export const runbookOnlyStepIds = [
  'preflight',
  'tenant-id',
  'ews-access',
  'email-profile',
  'org-defaults',
  'configure-mailboxes',
  'approve-email',
  'mark-primary-org',
  'test-enable',
  'adfs',
] as const;
export type RunbookOnlyStepId = (typeof runbookOnlyStepIds)[number];

/** Human titles of the runbook-only steps (cards, README, logs); the certificate steps keep theirs. */
export const runbookStepTitles: Readonly<Record<RunbookOnlyStepId, string>> = {
  preflight: 'Preflight checks',
  'tenant-id': 'Set the Exchange Online tenant ID on the organization (S2STenantId)',
  'ews-access': 'Allow EWS for CRM in Exchange Online (EwsEnabled, EwsAllowedAppIDs)',
  'email-profile': 'Email server profile, Exchange Online (Hybrid)',
  'org-defaults': 'Organization email defaults (profile, delivery methods, server-side sync)',
  'configure-mailboxes': 'Configure the mailboxes (profile, delivery methods)',
  'approve-email': 'Approve Email',
  'mark-primary-org': 'Sync items with Exchange from this organization only (orgmarkedasprimaryforexchangesync)',
  'test-enable': 'Test & Enable the mailboxes',
  adfs: 'AD FS: OAuth claims and the App for Outlook (script for the AD FS server)',
};
