import {
  ActDeliveryMethod,
  EmailRouterAccessApproval,
  EmailServerType,
  IncomingDeliveryMethod,
  MailboxTestStatus as S,
  OutgoingDeliveryMethod,
} from '../jobs/crm-values.ts';
import { TraceLevel } from './entity-metadata.ts';
import type { EwsRefusal } from './exchange-online.ts';
import type { S2SHealth } from './s2s-state.ts';
import { crmDateTime, type BadAddressKind, type MailboxRecord, type SimState, type TraceLogRecord } from './sim-state.ts';

/**
 * What one Test & Enable run of a mailbox gives, decided from the state at the moment it runs
 * (as CRM's asynchronous service does). Checked in CRM's order: approval, profile, then server-to-
 * server authentication to Exchange Online (`s2s-auth`: the S2S certificate, its key credential,
 * settings or service restarts are not right, see s2s-state.ts), the tenant, Exchange Online's EWS
 * access policy (`ews-blocked`: a 403 with X-EWS-Policy-Reason, exchange-online.ts), then the address.
 */
export type TestCause =
  | 'success'
  | 'nothing-to-test'
  | 'not-approved'
  | 'no-profile'
  | 'profile-inactive'
  | 'wrong-profile'
  | 's2s-auth'
  | 'wrong-tenant'
  | 'ews-blocked'
  /** Incoming and outgoing pass; ACT fails: the mailbox's items are tied to another CRM organization. */
  | 'act-another-organization'
  | BadAddressKind;

/**
 * The tenant Exchange Online authenticates against (Graph `/organization`) and the organization's
 * S2STenantId (Set-CrmAdvancedSetting): a profile with `usedefaulttenantid` uses the latter, else its
 * own `exchangeonlinetenantid`; either must equal the former.
 */
export interface TenantFacts {
  graphTenantId: string;
  organizationTenantId: string | null;
  /** Whether Exchange Online refuses CRM's EWS calls for an address (exchange-online.ts ewsRefusal); absent: EWS is allowed. */
  ewsRefusal?: (address: string) => EwsRefusal | null;
}

export interface TestOutcome {
  cause: TestCause;
  incomingemailstatus: number;
  outgoingemailstatus: number;
  actstatus: number;
  mailboxstatus: number;
  /** The alert text written to tracelogs when the run failed. */
  traceText: string | null;
  traceCode: number;
}

/** Trace codes of the simulated alerts (unverified: any stable number would do for the agent). */
const traceCodes: Record<TestCause, number> = {
  success: 0,
  'nothing-to-test': 0,
  'not-approved': 59,
  'no-profile': 40,
  'profile-inactive': 40,
  'wrong-tenant': 32,
  // The connection to Exchange Online failed, like the 401s (trace codes unverified).
  'ews-blocked': 32,
  'act-another-organization': 95,
  'wrong-profile': 32,
  's2s-auth': 32,
  unauthorized: 32,
  'location-unknown': 57,
  'insufficient-permissions': 96,
};

function traceText(cause: TestCause, mailbox: MailboxRecord, profileName: string, s2s: S2SHealth | undefined, tenantId: string | null, ews: EwsRefusal | null): string | null {
  const who = `the mailbox ${mailbox.name}`;
  const address = mailbox.emailaddress ?? '(no address)';
  switch (cause) {
    case 'success':
    case 'nothing-to-test':
      return null;
    case 'not-approved':
      return `Email can't be received or sent for ${who} because the email address of the mailbox ${address} requires approval by an administrator. The mailbox must be approved before it can process email. Approve the email address, and then enable the mailbox for email processing.`;
    case 'profile-inactive':
      return `Email can't be received for ${who} because the email server profile "${profileName}" associated with it is inactive. Activate the profile or associate the mailbox with an active one, and then test and enable it.`;
    case 'wrong-tenant':
      return `Email can't be received for ${who}. An error occurred while connecting to Exchange Online using the email server profile "${profileName}": The request failed. The remote server returned an error: (401) Unauthorized. The token was issued for the tenant ${tenantId ?? '(none: S2STenantId is not set)'}, which is not the tenant of the mailbox in Exchange Online: check the organization's S2STenantId and the profile's tenant ID.`;
    case 'ews-blocked':
      return `Email can't be received for ${who}. An error occurred while connecting to Exchange Online using the email server profile "${profileName}": The request failed with HTTP status 403: Forbidden. X-EWS-Policy-Reason: ${ews?.policyReason ?? 'EWS is disabled for this user or tenant'}.`;
    case 'no-profile':
      return `Email can't be received for ${who} because no email server profile is associated with it. Associate the mailbox with an email server profile, and then test and enable it.`;
    case 'wrong-profile':
      return `Email can't be received for ${who}. An error occurred while connecting to the email server using the email server profile "${profileName}": The request failed. The remote server returned an error: (401) Unauthorized. Check that the profile is an Exchange Online (Hybrid) profile that uses server-to-server authentication.`;
    case 'unauthorized':
      return `Email can't be received for ${who}. The request failed. The remote server returned an error: (401) Unauthorized. The email address ${address} may not match the mailbox in Exchange Online, the user may have no Exchange Online license, or the user may have been recreated recently.`;
    case 'location-unknown':
      return `The mailbox location could not be determined while processing ${who} (${address}). Autodiscover did not return a location for this address. Turn autodiscover off in the email server profile and give the EWS URLs, then test and enable the mailbox again.`;
    case 's2s-auth':
      return s2s && !s2s.ok ? s2s.traceText : 'Failed Authentication: the S2S certificate is missing or invalid.';
    case 'act-another-organization':
      return `Appointments, contacts, and tasks can't be synchronized for ${who} because the mailbox ${address} is configured with another org in Exchange. Test and enable the mailbox with "Sync items with Exchange from this organization only" to make this organization the primary one.`;
    case 'insufficient-permissions':
      return `Appointments, contacts, and tasks can't be synchronized for ${who} because the owner of the mailbox does not have sufficient privileges. Error: Crm.80048306 insufficient permissions on the Mailbox entity.`;
  }
}

/**
 * `s2s`: whether server-to-server authentication works right now (`s2sHealth`); when it does not,
 * every mailbox that gets as far as connecting to Exchange Online fails with its trace text.
 * Absent: authentication is assumed to work (the seed, tests of the engine alone).
 */
export function evaluateTestOutcome(state: SimState, mailbox: MailboxRecord, s2s?: S2SHealth, tenant?: TenantFacts): TestOutcome {
  const tested = {
    incoming: mailbox.incomingemaildeliverymethod === IncomingDeliveryMethod.ServerSideSync,
    outgoing: mailbox.outgoingemaildeliverymethod === OutgoingDeliveryMethod.ServerSideSync,
    act: mailbox.actdeliverymethod === ActDeliveryMethod.ServerSideSync,
  };
  const profile = mailbox._emailserverprofile_value ? state.profiles.get(mailbox._emailserverprofile_value) : undefined;
  const regarding = state.principals.get(mailbox._regardingobjectid_value);
  const approvalRequired =
    regarding?.logicalName === 'queue'
      ? state.organization.requireapprovalforqueueemail
      : state.organization.requireapprovalforuseremail;

  // The tenant the profile makes Exchange Online tokens for.
  const usedTenant = profile?.usedefaulttenantid === false ? profile.exchangeonlinetenantid : (tenant?.organizationTenantId ?? null);
  const address = (mailbox.emailaddress ?? '').toLowerCase();

  const ews = tenant?.ewsRefusal?.(address) ?? null;
  let cause: TestCause;
  if (!tested.incoming && !tested.outgoing && !tested.act) cause = 'nothing-to-test';
  else if (approvalRequired && mailbox.emailrouteraccessapproval !== EmailRouterAccessApproval.Approved) cause = 'not-approved';
  else if (!profile) cause = 'no-profile';
  else if (profile.statecode !== 0) cause = 'profile-inactive';
  else if (profile.servertype !== EmailServerType.ExchangeOnlineHybrid) cause = 'wrong-profile';
  else if (s2s && !s2s.ok) cause = 's2s-auth';
  else if (tenant && (usedTenant ?? '').toLowerCase() !== tenant.graphTenantId.toLowerCase()) cause = 'wrong-tenant';
  else if (ews !== null) cause = 'ews-blocked';
  else if (state.ownersWithoutPrivileges.has(address)) cause = 'insufficient-permissions';
  else cause = state.badAddresses.get(address) ?? 'success';
  if (cause === 'success' && tested.act && state.actInAnotherOrganization.has(address) && !mailbox.orgmarkedasprimaryforexchangesync) cause = 'act-another-organization';

  const ok = cause === 'success';
  // Only the directions that go through server-side sync are tested; the others stay Not Run.
  const status = (isTested: boolean, passes = ok): number => (!isTested ? S.NotRun : passes ? S.Success : S.Failure);
  // Email works for a mailbox whose only problem is the ACT tie to another organization.
  const mailOk = ok || cause === 'act-another-organization';
  return {
    cause,
    incomingemailstatus: status(tested.incoming, mailOk),
    outgoingemailstatus: status(tested.outgoing, mailOk),
    actstatus: status(tested.act),
    mailboxstatus: cause === 'nothing-to-test' ? S.NotRun : ok ? S.Success : S.Failure,
    traceText: traceText(cause, mailbox, profile?.name ?? '', s2s, usedTenant, ews),
    traceCode: traceCodes[cause],
  };
}

/**
 * Per alert table, "<mailbox id>|<trace code>" → the id of that mailbox's alert for that problem: a
 * cache over the table (an entry whose alert is gone, after a reset, is a miss), so finding the alert
 * to update costs one lookup, not a scan of every alert.
 */
const alertIndex = new WeakMap<Map<string, TraceLogRecord>, Map<string, string>>();

function findAlert(tracelogs: Map<string, TraceLogRecord>, key: string): TraceLogRecord | undefined {
  const id = alertIndex.get(tracelogs)?.get(key);
  return id === undefined ? undefined : tracelogs.get(id);
}

function indexAlert(tracelogs: Map<string, TraceLogRecord>, key: string, id: string): void {
  let index = alertIndex.get(tracelogs);
  if (!index) alertIndex.set(tracelogs, (index = new Map<string, string>()));
  index.set(key, id);
}

/**
 * Writes a finished run into the mailbox (and, when it failed, its alert: a new trace record, or
 * the mailbox's alert for the same problem updated in place). Returns the alert, if one was written.
 */
export function applyTestOutcome(
  state: SimState,
  mailbox: MailboxRecord,
  outcome: TestOutcome,
  nowMs: number,
  newId: () => string,
): TraceLogRecord | null {
  const now = crmDateTime(nowMs);
  mailbox.incomingemailstatus = outcome.incomingemailstatus;
  mailbox.outgoingemailstatus = outcome.outgoingemailstatus;
  mailbox.actstatus = outcome.actstatus;
  mailbox.mailboxstatus = outcome.mailboxstatus;
  mailbox.enabledforincomingemail = outcome.incomingemailstatus === S.Success;
  mailbox.enabledforoutgoingemail = outcome.outgoingemailstatus === S.Success;
  mailbox.enabledforact = outcome.actstatus === S.Success;
  mailbox.testemailconfigurationscheduled = false;
  mailbox.testemailconfigurationretrycount += 1;
  mailbox.testmailboxaccesscompletedon = now;
  mailbox.modifiedon = now;
  mailbox.versionnumber += 1;
  if (outcome.traceText === null) return null;
  // CRM keeps one alert per mailbox and problem: the same failure again updates it in place
  // (text and modifiedon move, createdon stays), a new problem gets its own alert.
  const key = `${mailbox.mailboxid}|${outcome.traceCode}`;
  const existing = findAlert(state.tracelogs, key);
  if (existing) {
    existing.text = outcome.traceText;
    existing.modifiedon = now;
    existing.occurrences += 1;
    return existing;
  }
  const trace: TraceLogRecord = {
    tracelogid: newId(),
    text: outcome.traceText,
    level: TraceLevel.Error,
    tracecode: outcome.traceCode,
    _regardingobjectid_value: mailbox.mailboxid,
    createdon: now,
    modifiedon: now,
    occurrences: 1,
  };
  state.tracelogs.set(trace.tracelogid, trace);
  indexAlert(state.tracelogs, key, trace.tracelogid);
  return trace;
}
