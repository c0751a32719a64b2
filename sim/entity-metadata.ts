import {
  ActDeliveryMethod,
  EmailServerType,
  IncomingDeliveryMethod,
  OutgoingDeliveryMethod,
  StateCode,
  approvalLabels,
  testStatusLabels,
} from '../jobs/crm-values.ts';

/**
 * The part of the CRM metadata the simulator serves: entity sets, their attributes, types, option
 * values (from shared/d365-contract.md through jobs/crm-values.ts) and which attributes a PATCH may
 * write. Everything the API layer validates comes from here.
 */
export type AttributeType = 'string' | 'memo' | 'integer' | 'option' | 'boolean' | 'guid' | 'datetime' | 'lookup';

/** A value as stored in a row and returned as JSON. Lookups are stored as `_x_value` GUID strings. */
export type AttrValue = string | number | boolean | null;
export type Row = Record<string, AttrValue>;

export interface LookupTarget {
  /** Navigation property used in `x@odata.bind`. */
  navigation: string;
  /** Entity sets a bind may point at (first is the usual one). */
  targetSets: readonly string[];
}

export interface AttributeMetadata {
  /** The name as read in JSON and used in $select/$filter (`_x_value` for lookups). */
  readonly name: string;
  readonly type: AttributeType;
  /** Option values and their labels (option sets and booleans). */
  readonly options?: Readonly<Record<number, string>>;
  /** May be set by PATCH (or POST for creatable sets). */
  readonly writable?: boolean;
  /** Set by the system (status fields): a PATCH naming them is refused with 400. */
  readonly readOnly?: boolean;
  readonly maxLength?: number;
  readonly min?: number;
  readonly max?: number;
  readonly lookup?: LookupTarget;
}

export interface EntityMetadata {
  readonly logicalName: string;
  readonly entitySet: string;
  readonly primaryKey: string;
  readonly primaryName: string;
  /** POST to the set creates a row. */
  readonly creatable: boolean;
  /** PATCH of a row is allowed. */
  readonly updatable: boolean;
  readonly attributes: ReadonlyMap<string, AttributeMetadata>;
}

/** The OData type name CRM puts in its messages, e.g. Microsoft.Dynamics.CRM.mailbox. */
export function crmTypeName(meta: EntityMetadata): string {
  return `Microsoft.Dynamics.CRM.${meta.logicalName}`;
}

/** The Edm type of an attribute, as named in OData error messages. */
export function edmType(attribute: AttributeMetadata): string {
  switch (attribute.type) {
    case 'string':
    case 'memo':
      return 'Edm.String';
    case 'integer':
    case 'option':
      return 'Edm.Int32';
    case 'boolean':
      return 'Edm.Boolean';
    case 'guid':
    case 'lookup':
      return 'Edm.Guid';
    case 'datetime':
      return 'Edm.DateTimeOffset';
  }
}

const yesNo: Record<number, string> = { 0: 'No', 1: 'Yes' };
const stateLabels: Record<number, string> = { [StateCode.Active]: 'Active', [StateCode.Inactive]: 'Inactive' };

function labelsOf(values: Record<string, number>, labels: Record<string, string>): Record<number, string> {
  const out: Record<number, string> = {};
  for (const [key, value] of Object.entries(values)) out[value] = labels[key] ?? key;
  return out;
}

const incomingLabels = labelsOf(IncomingDeliveryMethod, {
  None: 'None',
  Outlook: 'Microsoft Dynamics 365 for Outlook',
  ServerSideSync: 'Server-Side Synchronization or Email Router',
  ForwardMailbox: 'Forward Mailbox',
});
const outgoingLabels = labelsOf(OutgoingDeliveryMethod, {
  None: 'None',
  Outlook: 'Microsoft Dynamics 365 for Outlook',
  ServerSideSync: 'Server-Side Synchronization or Email Router',
});
const actLabels = labelsOf(ActDeliveryMethod, {
  Outlook: 'Microsoft Dynamics 365 for Outlook',
  ServerSideSync: 'Server-Side Synchronization',
  None: 'None',
});
const serverTypeLabels = labelsOf(EmailServerType, {
  Exchange: 'Exchange Server',
  Other: 'Other (POP3/SMTP)',
  ExchangeHybrid: 'Exchange Server (Hybrid)',
  ExchangeOnlineHybrid: 'Exchange Online (Hybrid)',
});
const credentialLabels: Record<number, string> = {
  0: 'Credentials Specified by a User or Queue',
  1: 'Credentials Specified in Email Server Profile',
  2: 'Server to Server Authentication',
  3: 'Windows Integrated Authentication',
  4: 'Without Credentials (Anonymous)',
};
const protocolLabels: Record<number, string> = { 0: 'Auto Detect', 1: 'Negotiate', 2: 'NTLM', 3: 'Basic' };
const lastTestLabels: Record<number, string> = { 0: 'Failure', 1: 'Success', 2: 'Warning' };
const channelLabels: Record<number, string> = { 0: 'Server-Side Synchronization', 1: 'Microsoft Dynamics 365 Email Router' };
/** tracelog.level (unverified: 1 Information, 2 Warning, 3 Error, as seen in CRM's alert wall). */
export const TraceLevel = { Information: 1, Warning: 2, Error: 3 } as const;
const traceLevelLabels: Record<number, string> = { 1: 'Information', 2: 'Warning', 3: 'Error' };

type Spec = Omit<AttributeMetadata, 'name'>;

function entity(
  base: Omit<EntityMetadata, 'attributes'>,
  attributes: Record<string, Spec>,
): EntityMetadata {
  const map = new Map<string, AttributeMetadata>();
  for (const [name, spec] of Object.entries(attributes)) map.set(name, { name, ...spec });
  return { ...base, attributes: map };
}

const str = (maxLength: number, writable = false): Spec => ({ type: 'string', maxLength, writable });
const bool = (writable = false): Spec => ({ type: 'boolean', options: yesNo, writable });
const option = (options: Record<number, string>, writable = false): Spec => ({ type: 'option', options, writable });
const date = (writable = false): Spec => ({ type: 'datetime', writable });
const lookup = (navigation: string, targetSets: readonly string[], writable = false): Spec => ({
  type: 'lookup',
  lookup: { navigation, targetSets },
  writable,
});
const readOnlyStatus: Spec = { type: 'option', options: testStatusLabels, readOnly: true };

const common: Record<string, Spec> = {
  createdon: date(),
  modifiedon: date(),
  versionnumber: { type: 'integer' },
};

export const mailboxMetadata = entity(
  { logicalName: 'mailbox', entitySet: 'mailboxes', primaryKey: 'mailboxid', primaryName: 'name', creatable: false, updatable: true },
  {
    mailboxid: { type: 'guid' },
    name: str(200, true),
    emailaddress: str(100, true),
    statecode: option(stateLabels, true),
    statuscode: option({ 1: 'Active', 2: 'Inactive' }),
    emailrouteraccessapproval: option(approvalLabels, true),
    incomingemaildeliverymethod: option(incomingLabels, true),
    outgoingemaildeliverymethod: option(outgoingLabels, true),
    actdeliverymethod: option(actLabels, true),
    incomingemailstatus: readOnlyStatus,
    outgoingemailstatus: readOnlyStatus,
    actstatus: readOnlyStatus,
    mailboxstatus: readOnlyStatus,
    enabledforincomingemail: { type: 'boolean', options: yesNo, readOnly: true },
    enabledforoutgoingemail: { type: 'boolean', options: yesNo, readOnly: true },
    enabledforact: { type: 'boolean', options: yesNo, readOnly: true },
    testemailconfigurationscheduled: bool(true),
    testemailconfigurationretrycount: { type: 'integer', readOnly: true },
    postponetestemailconfigurationuntil: date(true),
    testmailboxaccesscompletedon: { type: 'datetime', readOnly: true },
    processemailreceivedafter: date(true),
    orgmarkedasprimaryforexchangesync: bool(true),
    isserviceaccount: bool(),
    isforwardmailbox: bool(),
    _emailserverprofile_value: lookup('emailserverprofile', ['emailserverprofiles'], true),
    _regardingobjectid_value: lookup('regardingobjectid', ['systemusers', 'queues']),
    _ownerid_value: lookup('ownerid', ['systemusers']),
    _businessunitid_value: lookup('businessunitid', ['businessunits']),
    ...common,
  },
);

export const emailServerProfileMetadata = entity(
  {
    logicalName: 'emailserverprofile',
    entitySet: 'emailserverprofiles',
    primaryKey: 'emailserverprofileid',
    primaryName: 'name',
    creatable: true,
    updatable: true,
  },
  {
    emailserverprofileid: { type: 'guid' },
    name: str(100, true),
    description: { type: 'memo', maxLength: 2000, writable: true },
    servertype: option(serverTypeLabels, true),
    usedefaulttenantid: bool(true),
    exchangeonlinetenantid: str(36, true),
    useautodiscover: bool(true),
    incomingserverlocation: str(2048, true),
    outgoingserverlocation: str(2048, true),
    processemailsreceivedafter: date(true),
    minpollingintervalinminutes: { type: 'integer', min: 0, max: 1440, writable: true },
    moveundeliveredemails: bool(true),
    incomingcredentialretrieval: option(credentialLabels, true),
    outgoingcredentialretrieval: option(credentialLabels, true),
    incomingauthenticationprotocol: option(protocolLabels, true),
    outgoingauthenticationprotocol: option(protocolLabels, true),
    lasttestexecutionstatus: { type: 'option', options: lastTestLabels, readOnly: true },
    statecode: option(stateLabels),
    _ownerid_value: lookup('ownerid', ['systemusers'], true),
    ...common,
  },
);

export const traceLogMetadata = entity(
  { logicalName: 'tracelog', entitySet: 'tracelogs', primaryKey: 'tracelogid', primaryName: 'text', creatable: false, updatable: false },
  {
    tracelogid: { type: 'guid' },
    text: { type: 'memo', maxLength: 100000 },
    level: option(traceLevelLabels),
    tracecode: { type: 'integer' },
    _regardingobjectid_value: lookup('regardingobjectid', ['mailboxes', 'emailserverprofiles']),
    createdon: date(),
    /** Moves each time CRM updates the alert in place (the same failure again); createdon keeps the first occurrence. */
    modifiedon: date(),
  },
);

export const organizationMetadata = entity(
  { logicalName: 'organization', entitySet: 'organizations', primaryKey: 'organizationid', primaryName: 'name', creatable: false, updatable: true },
  {
    organizationid: { type: 'guid' },
    name: str(160),
    _defaultemailserverprofileid_value: lookup('defaultemailserverprofileid', ['emailserverprofiles'], true),
    defaultemailsettings: { type: 'memo', maxLength: 1_073_741_823, writable: true },
    emailconnectionchannel: option(channelLabels, true),
    requireapprovalforuseremail: bool(true),
    requireapprovalforqueueemail: bool(true),
    ...common,
  },
);

export const allEntityMetadata: readonly EntityMetadata[] = [
  mailboxMetadata,
  emailServerProfileMetadata,
  traceLogMetadata,
  organizationMetadata,
];

const bySet = new Map(allEntityMetadata.map((m) => [m.entitySet, m] as const));

export function metadataForSet(entitySet: string): EntityMetadata | undefined {
  return bySet.get(entitySet);
}

/** The attribute a navigation property (`emailserverprofile`) writes (`_emailserverprofile_value`). */
export function attributeForNavigation(meta: EntityMetadata, navigation: string): AttributeMetadata | undefined {
  for (const attribute of meta.attributes.values()) {
    if (attribute.lookup?.navigation === navigation) return attribute;
  }
  return undefined;
}
