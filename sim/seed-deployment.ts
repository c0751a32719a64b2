import {
  ActDeliveryMethod,
  EmailRouterAccessApproval as A,
  EmailServerType,
  IncomingDeliveryMethod,
  MailboxTestStatus,
  OutgoingDeliveryMethod,
  StateCode,
} from '../jobs/crm-values.ts';
import { seededRandom, type SeededRandom } from './seeded-random.ts';
import {
  crmDateTime,
  newProfileRecord,
  type BadAddressKind,
  type EmailServerProfileRecord,
  type MailboxRecord,
  type Principal,
  type SeedCategory,
  type SimScenario,
  type SimState,
} from './sim-state.ts';
import { roleNamed, SYSTEM_ADMINISTRATOR } from './sim-roles.ts';
import { applyTestOutcome, evaluateTestOutcome } from './test-outcome.ts';

export interface SeedOptions {
  seed?: number;
  mailboxCount?: number;
  orgName?: string;
  /** The clock the seeded dates are relative to (ms); default now. */
  nowMs?: number;
  /**
   * 'configured' (default): a deployment on Exchange Online in the middle of its move (the seed
   * below). 'fresh': nothing of the procedure done yet (see `makeFresh`).
   */
  scenario?: SimScenario;
}

export const DEFAULT_SEED = 20261122;
export const DEFAULT_MAILBOX_COUNT = 320;
export const EXCHANGE_ONLINE_PROFILE_NAME = 'Exchange Online';
export const LEGACY_POP3_PROFILE_NAME = 'Legacy POP3';
export const EXCHANGE_ON_PREMISES_PROFILE_NAME = 'Exchange 2013 (on-premises, retired)';

/**
 * Proportions of the seeded deployment (any mailbox count keeps them). Most mailboxes wait for
 * approval, as in a deployment that is being moved to Exchange Online.
 */
const categoryShares: ReadonlyArray<readonly [SeedCategory, number]> = [
  ['approved-success', 0.14],
  ['approved-failed', 0.08],
  ['approved-not-run', 0.05],
  ['rejected', 0.04],
  ['inactive', 0.05],
  ['wrong-profile', 0.06],
  ['outlook-delivery', 0.03],
  // 'pending' takes the rest (about 55 %).
];
/** Share of pending / not-yet-tested mailboxes whose address fails Test & Enable anyway. */
const BAD_ADDRESS_SHARE = 0.07;
/** Share of pending user mailboxes whose owner lacks prvApproveRejectEmailAddress. */
const NO_PRIVILEGE_SHARE = 0.03;
const QUEUE_SHARE = 0.07;
const DAY = 86_400_000;

const firstNames = [
  'Adele', 'Alex', 'Allan', 'Amara', 'Ana', 'Ben', 'Bianca', 'Carlos', 'Chen', 'Christie', 'Daniel', 'Diego',
  'Elena', 'Emily', 'Farah', 'Grady', 'Hana', 'Henrietta', 'Isaiah', 'Ivan', 'Jamal', 'Johanna', 'Joni', 'Kenji',
  'Lee', 'Lidia', 'Lynne', 'Mariana', 'Megan', 'Miriam', 'Nestor', 'Nia', 'Olga', 'Omar', 'Patti', 'Pradeep',
  'Raul', 'Sean', 'Siobhan', 'Sofia', 'Tomás', 'Una', 'Valeria', 'Wei', 'Yusuf', 'Zoë',
];
const lastNames = [
  'Adams', 'Bauer', 'Brown', 'Chen', 'Costa', "D'Souza", 'Diaz', 'Dubois', 'Evans', 'Fischer', 'García', 'Gupta',
  'Hansen', 'Holt', 'Ito', 'Jensen', 'Kowalski', 'Larsen', 'Lopez', 'Martin', 'Müller', 'Nakamura', 'Nguyen',
  "O'Brien", "O'Neil", 'Patel', 'Petrov', 'Quinn', 'Rossi', 'Sato', 'Schmidt', 'Silva', 'Smith', 'Tanaka',
  'Vance', 'Wagner', 'Wilson', 'Young', 'Zhang',
];
const queueNames = [
  'Sales', 'Support', 'Billing', 'Info', 'Careers', 'Helpdesk', 'Orders', 'Returns', 'Partners', 'Press',
  'Procurement', 'Legal',
];
const domains = ['contoso.com', 'contoso.com', 'contoso.com', 'fabrikam.com', 'fabrikam.com', 'eu.contoso.com'];
const badKinds: readonly BadAddressKind[] = [
  'unauthorized', 'unauthorized', 'location-unknown', 'location-unknown', 'insufficient-permissions',
];

/** Lower-case ASCII local part; keeps the apostrophe (Exchange allows it, and it tests '' escaping). */
function localPart(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9.']+/g, '.');
}

function categoriesFor(count: number, random: SeededRandom): SeedCategory[] {
  const list: SeedCategory[] = [];
  for (const [category, share] of categoryShares) {
    for (let i = 0; i < Math.round(count * share); i++) list.push(category);
  }
  while (list.length < count) list.push('pending');
  list.length = count;
  for (let i = list.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    const a = list[i];
    const b = list[j];
    if (a !== undefined && b !== undefined) {
      list[i] = b;
      list[j] = a;
    }
  }
  return list;
}

/** Builds the seeded deployment. The same options always give the same records (ids included). */
export function seedDeployment(options: SeedOptions = {}): SimState {
  const random = seededRandom(options.seed ?? DEFAULT_SEED);
  const count = options.mailboxCount ?? DEFAULT_MAILBOX_COUNT;
  const nowMs = options.nowMs ?? Date.now();
  const orgName = options.orgName ?? 'contoso';
  const past = (minDays: number, maxDays: number): number => nowMs - random.int(minDays * DAY, maxDays * DAY);

  const businessUnitId = random.guid();
  const callerUserId = random.guid();
  const principals = new Map<string, Principal>();
  principals.set(callerUserId, { id: callerUserId, logicalName: 'systemuser', name: 'CRM Setup Service', hasApprovePrivilege: true });

  const profile = (name: string, servertype: number, extra: Partial<EmailServerProfileRecord>): EmailServerProfileRecord => {
    const created = crmDateTime(past(400, 900));
    return {
      ...newProfileRecord(random.guid(), callerUserId, created),
      name,
      servertype,
      incomingcredentialretrieval: 2,
      outgoingcredentialretrieval: 2,
      lasttestexecutionstatus: 1,
      statecode: StateCode.Active,
      ...extra,
    };
  };
  const exchangeOnline = profile(EXCHANGE_ONLINE_PROFILE_NAME, EmailServerType.ExchangeOnlineHybrid, {
    description: 'Exchange Online (Hybrid) with server-to-server authentication',
  });
  const legacyPop3 = profile(LEGACY_POP3_PROFILE_NAME, EmailServerType.Other, {
    description: 'Old POP3/SMTP server of the Fabrikam acquisition',
    useautodiscover: false,
    incomingserverlocation: 'pop3.fabrikam.com',
    outgoingserverlocation: 'smtp.fabrikam.com',
    incomingcredentialretrieval: 1,
    outgoingcredentialretrieval: 1,
    incomingauthenticationprotocol: 3,
    outgoingauthenticationprotocol: 3,
    lasttestexecutionstatus: 0,
  });
  const onPremises = profile(EXCHANGE_ON_PREMISES_PROFILE_NAME, EmailServerType.Exchange, {
    useautodiscover: false,
    incomingserverlocation: 'https://mail.contoso.local/EWS/Exchange.asmx',
    outgoingserverlocation: 'https://mail.contoso.local/EWS/Exchange.asmx',
    incomingcredentialretrieval: 3,
    outgoingcredentialretrieval: 3,
    incomingauthenticationprotocol: 1,
    outgoingauthenticationprotocol: 1,
    lasttestexecutionstatus: 2,
  });
  const profiles = new Map([exchangeOnline, legacyPop3, onPremises].map((p) => [p.emailserverprofileid, p] as const));

  const orgCreated = crmDateTime(past(1000, 1500));
  const state: SimState = {
    organization: {
      organizationid: random.guid(),
      name: orgName,
      _defaultemailserverprofileid_value: exchangeOnline.emailserverprofileid,
      defaultemailsettings:
        `<EmailSettings><IncomingEmailDeliveryMethod>${IncomingDeliveryMethod.ServerSideSync}</IncomingEmailDeliveryMethod>` +
        `<OutgoingEmailDeliveryMethod>${OutgoingDeliveryMethod.ServerSideSync}</OutgoingEmailDeliveryMethod>` +
        `<ACTDeliveryMethod>${ActDeliveryMethod.ServerSideSync}</ACTDeliveryMethod></EmailSettings>`,
      emailconnectionchannel: 0,
      requireapprovalforuseremail: true,
      requireapprovalforqueueemail: true,
      createdon: orgCreated,
      modifiedon: orgCreated,
      versionnumber: 1,
    },
    businessUnitId,
    callerUserId,
    profileIds: {
      exchangeOnline: exchangeOnline.emailserverprofileid,
      legacyPop3: legacyPop3.emailserverprofileid,
      exchangeOnPremises: onPremises.emailserverprofileid,
    },
    profiles,
    mailboxes: new Map(),
    tracelogs: new Map(),
    principals,
    badAddresses: new Map(),
    seedCategories: new Map(),
    userRoles: new Map([[callerUserId, [roleNamed(SYSTEM_ADMINISTRATOR)]]]),
    ownersWithoutPrivileges: new Set(),
    actInAnotherOrganization: new Set(),
  };

  const used = new Set<string>();
  const unique = (local: string, domain: string): string => {
    let address = `${local}@${domain}`;
    for (let n = 2; used.has(address); n++) address = `${local}${n}@${domain}`;
    used.add(address);
    return address;
  };
  const queueCounter = new Map<string, number>();

  for (const category of categoriesFor(count, random)) {
    const isQueue = random.chance(QUEUE_SHARE);
    const domain = random.pick(domains);
    let principal: Principal;
    let address: string;
    if (isQueue) {
      const base = random.pick(queueNames);
      const n = (queueCounter.get(base) ?? 0) + 1;
      queueCounter.set(base, n);
      const name = n === 1 ? base : `${base} ${n}`;
      address = unique(localPart(base), domain);
      principal = { id: random.guid(), logicalName: 'queue', name, hasApprovePrivilege: true };
    } else {
      const first = random.pick(firstNames);
      const last = random.pick(lastNames);
      address = unique(`${localPart(first)}.${localPart(last)}`, domain);
      principal = { id: random.guid(), logicalName: 'systemuser', name: `${first} ${last}`, hasApprovePrivilege: true };
    }
    principals.set(principal.id, principal);
    const created = crmDateTime(past(30, 900));
    const mailbox: MailboxRecord = {
      mailboxid: random.guid(),
      name: principal.name,
      emailaddress: address,
      statecode: StateCode.Active,
      statuscode: 1,
      emailrouteraccessapproval: random.chance(0.5) ? A.Empty : A.PendingApproval,
      incomingemaildeliverymethod: IncomingDeliveryMethod.ServerSideSync,
      outgoingemaildeliverymethod: OutgoingDeliveryMethod.ServerSideSync,
      actdeliverymethod: ActDeliveryMethod.ServerSideSync,
      incomingemailstatus: MailboxTestStatus.NotRun,
      outgoingemailstatus: MailboxTestStatus.NotRun,
      actstatus: MailboxTestStatus.NotRun,
      mailboxstatus: MailboxTestStatus.NotRun,
      enabledforincomingemail: false,
      enabledforoutgoingemail: false,
      enabledforact: false,
      testemailconfigurationscheduled: false,
      testemailconfigurationretrycount: 0,
      postponetestemailconfigurationuntil: null,
      testmailboxaccesscompletedon: null,
      processemailreceivedafter: null,
      orgmarkedasprimaryforexchangesync: false,
      isserviceaccount: false,
      isforwardmailbox: false,
      _emailserverprofile_value: exchangeOnline.emailserverprofileid,
      _regardingobjectid_value: principal.id,
      _ownerid_value: isQueue ? callerUserId : principal.id,
      _businessunitid_value: businessUnitId,
      createdon: created,
      modifiedon: created,
      versionnumber: 1,
    };
    state.mailboxes.set(mailbox.mailboxid, mailbox);
    state.seedCategories.set(mailbox.mailboxid, category);

    const markBad = (): void => {
      state.badAddresses.set(address.toLowerCase(), random.pick(badKinds));
    };
    const runTest = (): void => {
      const at = Math.max(Date.parse(created) + DAY, past(1, 29));
      applyTestOutcome(state, mailbox, evaluateTestOutcome(state, mailbox), at, () => random.guid());
    };

    switch (category) {
      case 'pending':
        if (random.chance(BAD_ADDRESS_SHARE)) markBad();
        else if (!isQueue && random.chance(NO_PRIVILEGE_SHARE / (1 - BAD_ADDRESS_SHARE))) principal.hasApprovePrivilege = false;
        break;
      case 'approved-success':
        mailbox.emailrouteraccessapproval = A.Approved;
        mailbox.orgmarkedasprimaryforexchangesync = true;
        runTest();
        break;
      case 'approved-failed':
        mailbox.emailrouteraccessapproval = A.Approved;
        markBad();
        runTest();
        break;
      case 'approved-not-run':
        mailbox.emailrouteraccessapproval = A.Approved;
        if (random.chance(BAD_ADDRESS_SHARE)) markBad();
        break;
      case 'rejected':
        mailbox.emailrouteraccessapproval = A.Rejected;
        break;
      case 'inactive':
        mailbox.statecode = StateCode.Inactive;
        mailbox.statuscode = 2;
        break;
      case 'wrong-profile':
        mailbox._emailserverprofile_value = random.chance(0.67) ? legacyPop3.emailserverprofileid : onPremises.emailserverprofileid;
        if (random.chance(0.5)) {
          mailbox.emailrouteraccessapproval = A.Approved;
          runTest();
        }
        break;
      case 'outlook-delivery':
        mailbox.emailrouteraccessapproval = A.Approved;
        mailbox.incomingemaildeliverymethod = IncomingDeliveryMethod.Outlook;
        mailbox.outgoingemaildeliverymethod = OutgoingDeliveryMethod.Outlook;
        mailbox.actdeliverymethod = ActDeliveryMethod.Outlook;
        break;
    }
  }
  if (options.scenario === 'fresh') makeFresh(state, random);
  return state;
}

const FRESH_EMAIL_SETTINGS =
  `<EmailSettings><IncomingEmailDeliveryMethod>${IncomingDeliveryMethod.None}</IncomingEmailDeliveryMethod>` +
  `<OutgoingEmailDeliveryMethod>${OutgoingDeliveryMethod.None}</OutgoingEmailDeliveryMethod>` +
  `<ACTDeliveryMethod>${ActDeliveryMethod.None}</ACTDeliveryMethod></EmailSettings>`;

/**
 * Turns the seeded deployment into one where none of the procedure was done (the runbook's
 * starting point): no Exchange Online (Hybrid) profile (the POP3 and on-premises ones stay), no
 * default profile, default delivery methods None (ACT None is 2), the Email Router as connection
 * channel, and every mailbox active, without a profile, with delivery methods None, approval Empty
 * or Pending and Test & Enable never run. No address is bad and every owner has its privileges, so
 * a runbook that does every step right ends with every mailbox enabled. Runs after the configured
 * seed (same ids, names and addresses), drawing from the same PRNG only at its end.
 */
function makeFresh(state: SimState, random: SeededRandom): void {
  const exchangeOnline = state.profileIds.exchangeOnline;
  if (exchangeOnline !== null) state.profiles.delete(exchangeOnline);
  state.profileIds.exchangeOnline = null;
  state.organization._defaultemailserverprofileid_value = null;
  state.organization.defaultemailsettings = FRESH_EMAIL_SETTINGS;
  state.organization.emailconnectionchannel = 1;
  state.tracelogs.clear();
  state.badAddresses.clear();
  for (const principal of state.principals.values()) principal.hasApprovePrivilege = true;
  for (const mailbox of state.mailboxes.values()) {
    Object.assign(mailbox, {
      statecode: StateCode.Active,
      statuscode: 1,
      emailrouteraccessapproval:
        mailbox.emailrouteraccessapproval === A.Empty || mailbox.emailrouteraccessapproval === A.PendingApproval
          ? mailbox.emailrouteraccessapproval
          : random.chance(0.5) ? A.Empty : A.PendingApproval,
      incomingemaildeliverymethod: IncomingDeliveryMethod.None,
      outgoingemaildeliverymethod: OutgoingDeliveryMethod.None,
      actdeliverymethod: ActDeliveryMethod.None,
      incomingemailstatus: MailboxTestStatus.NotRun,
      outgoingemailstatus: MailboxTestStatus.NotRun,
      actstatus: MailboxTestStatus.NotRun,
      mailboxstatus: MailboxTestStatus.NotRun,
      enabledforincomingemail: false,
      enabledforoutgoingemail: false,
      enabledforact: false,
      testemailconfigurationscheduled: false,
      testemailconfigurationretrycount: 0,
      testmailboxaccesscompletedon: null,
      orgmarkedasprimaryforexchangesync: false,
      _emailserverprofile_value: null,
      modifiedon: mailbox.createdon,
      versionnumber: 1,
    } satisfies Partial<MailboxRecord>);
    state.seedCategories.set(mailbox.mailboxid, 'pending');
  }
}
