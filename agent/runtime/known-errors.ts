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
  // ---- server-to-server authentication (the S2S certificate, issue 3); the specific ones first ----
  {
    cause: 's2s-private-key-not-found',
    title: 'Two certificates with the same subject (private key not found)',
    remediation:
      'LocalMachine\\My on the server holds two certificates with the same subject, and Set-CrmCertificate (and the import) find the certificate by subject name, so they pick the wrong one. Get the new certificate issued with a different subject (for example add the year to the CN) and rotate to it; do not delete the old certificate (a rollback needs it).',
    patterns: [/private key not found/i, /same subject/i],
  },
  {
    cause: 's2s-key-not-readable',
    title: "The async service account cannot read the certificate's private key",
    remediation:
      'Grant the Asynchronous Processing Service account Read on the private key (Manage Private Keys, or icacls on its file under %ProgramData%\\Microsoft\\Crypto\\RSA\\MachineKeys), then restart MSCRMAsyncService and MSCRMAsyncService$maintenance.',
    patterns: [/Keyset does not exist/i, /cannot read the private key/i],
  },
  {
    cause: 's2s-keyspec',
    title: 'The certificate has the wrong KeySpec (CRM needs 1, AT_KEYEXCHANGE)',
    remediation:
      'Import the PFX again with `certutil -importpfx <file> AT_KEYEXCHANGE` and check with `certutil -v -store my`; a PFX made for a CNG key must be exported again for a legacy CSP (openssl pkcs12 -export -keyex).',
    patterns: [/KeySpec/i, /AT_KEYEXCHANGE/i],
  },
  {
    cause: 's2s-key-too-small',
    title: 'Entra ID refused the certificate (AADSTS700027)',
    remediation: 'Entra ID rejects RSA keys below 2048 bits: issue a new certificate with an RSA key of at least 2048 bits and a SHA-256 signature, then rotate to it.',
    patterns: [/AADSTS700027/i],
  },
  {
    cause: 's2s-no-key-credential',
    title: 'The certificate is not a key credential of the Dynamics CRM service principal',
    remediation:
      'Add the registered certificate as a key credential of the Microsoft Dynamics CRM service principal in Entra ID (Resume the rotation, or roll it back) and check that the agent signs in to the tenant Exchange Online uses.',
    patterns: [/not a key credential/i],
  },
  // EWS retirement (since 1 October 2026): Exchange Online answers 403 with X-EWS-Policy-Reason.
  // Matched on the header and on "EWS" with "disabled" / "blocked by policy", not on one sentence.
  {
    cause: 'ews-blocked',
    title: 'EWS is blocked for CRM in Exchange Online (403, X-EWS-Policy-Reason)',
    remediation:
      "Exchange Online refuses CRM's EWS calls: the organization's EwsEnabled is false, CRM's app ID is not in EwsAllowedAppIDs, or the mailbox's own EwsEnabled is false. Run `@setup ews allow` (or Set-OrganizationConfig -EwsEnabled $true and -EwsAllowedAppIDs with CRM's app ID added; Set-CASMailbox -EwsEnabled $true for the mailboxes), wait up to 24 hours for Exchange to apply it, then run Test & Enable again. After 1 April 2027 EWS is off for good and nothing fixes this.",
    patterns: [/X-EWS-Policy-Reason/i, /\bEWS\b[^.]*\b(?:is disabled|blocked by policy)\b/i, /\b403\b[^.]*\bEWS\b/i],
  },
  {
    cause: 'exchange-not-enabled',
    title: 'Exchange Online refused the token (invalid_token naming Exchange)',
    remediation: 'The tenant is not enabled for on-premises CRM access: ask Exchange Support to enable it, then run Test & Enable again.',
    patterns: [/invalid_token[\s\S]*00000002-0000-0ff1-ce00-000000000000/i],
  },
  {
    cause: 's2s-failed-authentication',
    title: 'Server-to-server authentication failed (the S2S certificate is missing or invalid)',
    remediation:
      'The S2S certificate is missing or invalid: install or replace it, then retry. `@setup cert status` shows which part disagrees (registration, a server\'s store, key access, KeySpec, the Entra key credential, the service restart): fix it or roll the rotation back, then run Test & Enable again.',
    patterns: [/Failed Authentication/i],
  },
  {
    cause: 'exchange-unauthorized',
    title: 'Exchange Online refused the mailbox (401 Unauthorized)',
    remediation:
      "Check that the mailbox's email address is the user's address in Exchange Online, that the mailbox uses an Exchange Online (Hybrid) email server profile, that the user has an Exchange Online license, and that the profile points at the right tenant. If the user was recreated in Exchange, the old identity can stay cached for up to 72 hours.",
    // "(401) Unauthorized" (EWS, Test & Enable) and "401 Unauthorized" (the runbook's Test & Enable step, HTTP texts).
    patterns: [/\(?401\)?\s*Unauthorized/i],
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
    remediation:
      'Run Test & Enable again with "sync items with Exchange from this organization only": `@setup sync this org only` (or the button on the results card) marks these mailboxes (orgmarkedasprimaryforexchangesync) and tests them again, once an approver confirms.',
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

/** The remediation of a known cause, for the hint of an error (undefined when the text names none). */
export function knownHint(text: string): string | undefined {
  const known = classifyFailure(text);
  return known.cause === unknownError.cause ? undefined : known.remediation;
}
