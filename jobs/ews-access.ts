import { z } from 'zod';

/**
 * EWS access in Exchange Online (shared/d365-contract.md, "EWS access in Exchange Online"): server-
 * side sync from CRM on-premises to Exchange Online is EWS, which Exchange Online blocks since
 * 1 October 2026 unless the organization has `EwsEnabled` true and CRM's application in its EWS
 * allow-list (`EwsAllowedAppIDs`), and switches off for good on 1 April 2027. The agent reads the
 * tenant's settings with Exchange Online PowerShell (agent/adapters/exchange/ews.ts) and reports them in
 * this shape; the bot shows it on the preflight, status and `ews` cards.
 */

/** Exchange Online blocks EWS unless allowed, from this instant (UTC). */
export const EWS_BLOCKED_SINCE = Date.UTC(2026, 9, 1);
/** EWS in Exchange Online is switched off for good at this instant (UTC): no setting brings it back. */
export const EWS_SHUTDOWN_AT = Date.UTC(2027, 3, 1);

/**
 * The application ID Exchange Online sees for CRM on-premises' server-side sync: the Dynamics CRM
 * first-party application (unverified: confirm it in the tenant's EWS usage report, Microsoft 365
 * admin center; the agent takes EWS_APP_ID to override it).
 */
export const DEFAULT_EWS_APP_ID = '00000007-0000-0000-c000-000000000000';

const DAY_MS = 86_400_000;

/** Whole days left until the shutdown (0 on and after 1 April 2027); a part of a day counts as a day. */
export function ewsDaysLeft(nowMs: number): number {
  return Math.max(0, Math.ceil((EWS_SHUTDOWN_AT - nowMs) / DAY_MS));
}

export const isAfterEwsShutdown = (nowMs: number) => nowMs >= EWS_SHUTDOWN_AT;

/** What Microsoft leaves after the shutdown (the contract's options), for every card that needs it. */
export const AFTER_SHUTDOWN_OPTIONS =
  'EWS in Exchange Online was switched off on 1 April 2027 and no setting brings it back; Microsoft has published no server-side sync for CRM on-premises over Microsoft Graph. The options: keep these mailboxes in Exchange Server (on-premises or Subscription Edition) and sync with that, or move the organization to Dynamics 365 online.';

/** How to confirm the app ID to allow (EWS_APP_ID) in the tenant. */
export const CONFIRM_APP_ID =
  "Confirm the app ID in the tenant's EWS usage report (Microsoft 365 admin center, Reports, Usage: it lists the app IDs that call EWS) and set EWS_APP_ID on the agent if CRM's calls show another one.";

/**
 * allowed: EwsEnabled true and the app allow-listed (mailboxes may still be blocked one by one);
 * blocked: Exchange Online refuses CRM's EWS calls for the whole tenant; shut-down: after 1 April
 * 2027; unknown: the settings could not be read (detail says why).
 */
export const ewsVerdictSchema = z.enum(['allowed', 'blocked', 'shut-down', 'unknown']);
export type EwsVerdict = z.infer<typeof ewsVerdictSchema>;

const count = z.number().int().nonnegative();

export const ewsAccessReportSchema = z.object({
  verdict: ewsVerdictSchema,
  /** Organization EwsEnabled (null: unset, or not read). */
  organizationEnabled: z.boolean().nullable(),
  /** The app ID that must be allowed (EWS_APP_ID). */
  appId: z.string().max(64),
  /** Whether appId is in EwsAllowedAppIDs (null: not read). */
  appAllowed: z.boolean().nullable(),
  /** EwsAllowedAppIDs as read (null: no list, or not read). */
  allowedAppIds: z.array(z.string().max(64)).max(100).nullable(),
  /** EwsApplicationAccessPolicy (the older user-agent lists, EnforceAllowList / EnforceBlockList), null when unset. */
  applicationAccessPolicy: z.string().max(64).nullable(),
  /** Mailboxes of the selection whose own EwsEnabled is false (Get-CASMailbox). */
  mailboxesChecked: count,
  mailboxesDisabled: count,
  disabledSample: z.array(z.string().max(320)).max(10),
  daysLeft: count,
  /**
   * The older EwsApplicationAccessPolicy (user-agent lists) applies on top of the app-ID list and may
   * refuse CRM although its app is allowed (which user agent CRM sends is unverified): never all good.
   * Absent from agents older than this field.
   */
  olderPolicyApplies: z.boolean().optional(),
  /** What was found, in one sentence. */
  detail: z.string().max(600),
  /** What to do (absent when nothing is to be done). */
  fix: z.string().max(1200).optional(),
}).strict();
export type EwsAccessReport = z.infer<typeof ewsAccessReportSchema>;
