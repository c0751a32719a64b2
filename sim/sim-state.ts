/**
 * The simulator's live state: plain records with the real CRM attribute names (lookups as
 * `_x_value`), so tests can assert against exactly what the Web API serves.
 */
export type MailboxRecord = {
  mailboxid: string;
  name: string;
  emailaddress: string | null;
  statecode: number;
  statuscode: number;
  emailrouteraccessapproval: number;
  incomingemaildeliverymethod: number;
  outgoingemaildeliverymethod: number;
  actdeliverymethod: number;
  incomingemailstatus: number;
  outgoingemailstatus: number;
  actstatus: number;
  mailboxstatus: number;
  enabledforincomingemail: boolean;
  enabledforoutgoingemail: boolean;
  enabledforact: boolean;
  testemailconfigurationscheduled: boolean;
  testemailconfigurationretrycount: number;
  postponetestemailconfigurationuntil: string | null;
  testmailboxaccesscompletedon: string | null;
  processemailreceivedafter: string | null;
  orgmarkedasprimaryforexchangesync: boolean;
  isserviceaccount: boolean;
  isforwardmailbox: boolean;
  _emailserverprofile_value: string | null;
  _regardingobjectid_value: string;
  _ownerid_value: string;
  _businessunitid_value: string;
  createdon: string;
  modifiedon: string;
  versionnumber: number;
};

export type EmailServerProfileRecord = {
  emailserverprofileid: string;
  name: string;
  description: string | null;
  servertype: number;
  usedefaulttenantid: boolean;
  exchangeonlinetenantid: string | null;
  useautodiscover: boolean;
  incomingserverlocation: string | null;
  outgoingserverlocation: string | null;
  processemailsreceivedafter: string | null;
  minpollingintervalinminutes: number;
  moveundeliveredemails: boolean;
  incomingcredentialretrieval: number;
  outgoingcredentialretrieval: number;
  incomingauthenticationprotocol: number;
  outgoingauthenticationprotocol: number;
  lasttestexecutionstatus: number | null;
  statecode: number;
  _ownerid_value: string;
  createdon: string;
  modifiedon: string;
  versionnumber: number;
};

export type TraceLogRecord = {
  tracelogid: string;
  text: string;
  level: number;
  tracecode: number;
  _regardingobjectid_value: string;
  createdon: string;
  modifiedon: string;
  /**
   * How often the failure occurred. CRM keeps such a count on the alert (shared/d365-contract.md,
   * "Alerts"); its attribute name is unverified, so the simulator does not serve it.
   */
  occurrences: number;
};

export type OrganizationRecord = {
  organizationid: string;
  name: string;
  _defaultemailserverprofileid_value: string | null;
  defaultemailsettings: string;
  emailconnectionchannel: number;
  requireapprovalforuseremail: boolean;
  requireapprovalforqueueemail: boolean;
  createdon: string;
  modifiedon: string;
  versionnumber: number;
};

/** A user or queue that owns / is the regarding object of a mailbox (not served as an entity set). */
export interface Principal {
  id: string;
  logicalName: 'systemuser' | 'queue';
  name: string;
  /** False for the seeded owners whose mailboxes answer 403 when approved. */
  hasApprovePrivilege: boolean;
}

/** Why a seeded "bad" address fails Test & Enable even when everything else is right. */
export type BadAddressKind = 'unauthorized' | 'location-unknown' | 'insufficient-permissions';

/** What the seed intended for each mailbox: lets tests pick mailboxes by situation. */
export type SeedCategory =
  | 'pending'
  | 'approved-success'
  | 'approved-failed'
  | 'approved-not-run'
  | 'rejected'
  | 'inactive'
  | 'wrong-profile'
  | 'outlook-delivery';

export interface SimState {
  organization: OrganizationRecord;
  businessUnitId: string;
  /** The user WhoAmI answers with (the agent's service account). */
  callerUserId: string;
  /** `exchangeOnline` is null in the fresh scenario (no Exchange Online (Hybrid) profile yet). */
  profileIds: { exchangeOnline: string | null; legacyPop3: string; exchangeOnPremises: string };
  profiles: Map<string, EmailServerProfileRecord>;
  mailboxes: Map<string, MailboxRecord>;
  tracelogs: Map<string, TraceLogRecord>;
  principals: Map<string, Principal>;
  /** Lower-cased address → why it fails Test & Enable. */
  badAddresses: Map<string, BadAddressKind>;
  /** mailboxid → what the seed made of it. */
  seedCategories: Map<string, SeedCategory>;
  /** systemuser id → its security roles (systemuserroles_association); users not listed have Salesperson. */
  userRoles: Map<string, SimRole[]>;
  /**
   * Lower-cased addresses whose mailbox owner lacks the Mailbox privileges (knob
   * `ownersWithoutPrivileges`): their Test & Enable fails with Crm.80048306.
   */
  ownersWithoutPrivileges: Set<string>;
  /**
   * Lower-cased addresses whose appointments, contacts and tasks are tied to another CRM
   * organization (knob `actInAnotherOrganization`): their ACT fails Test & Enable ("configured with
   * another org") until the mailbox has orgmarkedasprimaryforexchangesync true.
   */
  actInAnotherOrganization: Set<string>;
}

/** A security role as `systemuserroles_association` serves it. */
export interface SimRole {
  roleid: string;
  name: string;
}

/** Which deployment the simulator seeds: today's configured one, or a fresh, unconfigured one. */
export type SimScenario = 'configured' | 'fresh';
export const simScenarios = ['configured', 'fresh'] as const;

/** Mailboxes whose owner lacks prvApproveRejectEmailAddress (setting the approval answers 403). */
export function mailboxesWithoutApprovePrivilege(state: SimState): MailboxRecord[] {
  return [...state.mailboxes.values()].filter((m) => state.principals.get(m._ownerid_value)?.hasApprovePrivilege === false);
}

/** Mailboxes the seed put in a category, in id order of creation. */
export function mailboxesInCategory(state: SimState, category: SeedCategory): MailboxRecord[] {
  return [...state.mailboxes.values()].filter((m) => state.seedCategories.get(m.mailboxid) === category);
}

/** CRM serialises date-times to the second, in UTC with a Z. */
export function crmDateTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** A new email server profile as CRM fills it in before the caller's values are applied. */
export function newProfileRecord(id: string, owner: string, now: string): EmailServerProfileRecord {
  return {

  emailserverprofileid: id,
  name: '',
  description: null,
  servertype: 0,
  usedefaulttenantid: true,
  exchangeonlinetenantid: null,
  useautodiscover: true,
  incomingserverlocation: null,
  outgoingserverlocation: null,
  processemailsreceivedafter: null,
  minpollingintervalinminutes: 0,
  moveundeliveredemails: false,
  incomingcredentialretrieval: 0,
  outgoingcredentialretrieval: 0,
  incomingauthenticationprotocol: 0,
  outgoingauthenticationprotocol: 0,
  lasttestexecutionstatus: null,
  statecode: 0,
  _ownerid_value: owner,
  createdon: now,
  modifiedon: now,
  versionnumber: 1,
  };
}
