import { EmailRouterAccessApproval, MailboxTestStatus } from '../jobs/crm-values.ts';
import { CrmError, CrmErrorCode, odataError } from './crm-error.ts';
import { allEntityMetadata, mailboxMetadata, metadataForSet, type EntityMetadata, type Row } from './entity-metadata.ts';
import { contextSelect, parsePrefer, parseQueryOptions, projectRow, runQuery, encodeSkipToken, type LookupResolver } from './odata-query.ts';
import { isGuid, parseJsonObject, validateChanges, type Changes } from './crm-write.ts';
import { crmDateTime, newProfileRecord, type MailboxRecord, type SimState } from './sim-state.ts';
import type { S2SFault } from './s2s-state.ts';
import { DEFAULT_USER_ROLE, roleNamed } from './sim-roles.ts';
import type { TestEnableEngine } from './test-enable-engine.ts';

/**
 * The simulated Web API below the service root (`<org>/api/data/v9.0/`): one request in, one
 * response out, with no HTTP plumbing, so `$batch` parts run through exactly the same code as
 * direct requests. Writes go through a transaction (undo log + after-commit effects) so a change
 * set can be rolled back.
 */
export interface ApiRequest {
  method: string;
  /** Path below the service root, percent-decoded: `mailboxes(<id>)`, `WhoAmI`, `` … */
  resource: string;
  query: URLSearchParams;
  /** Header names lower-cased. */
  headers: ReadonlyMap<string, string>;
  body: string;
  /** Absolute service root ending with `/`, used for @odata.context, nextLink and OData-EntityId. */
  serviceRoot: string;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** A `hangMs` fault: the request took effect; the simulator answers only after this long. */
  hangMs?: number;
}

export interface Transaction {
  undo: Array<() => void>;
  afterCommit: Array<() => void>;
}

export function newTransaction(): Transaction {
  return { undo: [], afterCommit: [] };
}

export function commitTransaction(tx: Transaction): void {
  for (const effect of tx.afterCommit) effect();
  tx.undo.length = 0;
  tx.afterCommit.length = 0;
}

export function rollbackTransaction(tx: Transaction): void {
  for (let i = tx.undo.length - 1; i >= 0; i--) tx.undo[i]?.();
  tx.undo.length = 0;
  tx.afterCommit.length = 0;
}

export interface CrmApiContext {
  getState(): SimState;
  engine: TestEnableEngine;
  pageSizeMax(): number;
  newId(): string;
  now(): number;
  /** Takes one pending fault for a target such as `crm:PATCH mailboxes` (the S2S fault list). */
  takeFault?(target: string): S2SFault | undefined;
  /** A write committed: `kind` is `<METHOD> <entity set>` (one row each). */
  onWrite?(kind: string): void;
}

/** The error code a CRM write fault answers with unless it names one (CRM's generic access-denied code). */
export const DEFAULT_WRITE_FAULT_CODE = CrmErrorCode.privilege;
/** The status a CRM write fault answers with unless it names one. */
export const DEFAULT_WRITE_FAULT_STATUS = 400;

/**
 * A fault for the write `kind` (`PATCH mailboxes`): an error fault throws CRM's error (nothing is
 * written); a `hangMs` fault lets the write happen and gives the delay its answer must wait.
 */
function writeFault(ctx: CrmApiContext, kind: string): number | undefined {
  const fault = ctx.takeFault?.(`crm:${kind}`);
  if (!fault) return undefined;
  if (fault.hangMs !== undefined) return fault.hangMs;
  throw new CrmError(fault.status ?? DEFAULT_WRITE_FAULT_STATUS, fault.code ?? DEFAULT_WRITE_FAULT_CODE, fault.message ?? `The ${kind} request was rejected (simulated fault).`);
}

/** Runs a write with its fault, counts it once committed, and carries a hang on the answer. */
function write(ctx: CrmApiContext, kind: string, tx: Transaction, run: () => ApiResponse): ApiResponse {
  const hangMs = writeFault(ctx, kind);
  const response = run();
  if (response.status < 400) tx.afterCommit.push(() => ctx.onWrite?.(kind));
  return hangMs === undefined ? response : { ...response, hangMs };
}

const JSON_TYPE = 'application/json; odata.metadata=minimal';

export function jsonResponse(status: number, value: unknown, extra: Record<string, string> = {}): ApiResponse {
  return { status, headers: { 'OData-Version': '4.0', 'Content-Type': JSON_TYPE, ...extra }, body: JSON.stringify(value) };
}

export function errorResponse(error: CrmError): ApiResponse {
  return { status: error.status, headers: { 'OData-Version': '4.0', 'Content-Type': JSON_TYPE }, body: error.toBody() };
}

function noContent(extra: Record<string, string> = {}): ApiResponse {
  return { status: 204, headers: { 'OData-Version': '4.0', ...extra }, body: '' };
}

function methodNotAllowed(method: string, resource: string): CrmError {
  return new CrmError(405, CrmErrorCode.methodNotAllowed, `The HTTP method '${method}' is not allowed on '${resource}' in the simulator.`);
}

function notFound(meta: EntityMetadata, id: string): CrmError {
  return new CrmError(404, CrmErrorCode.objectDoesNotExist, `${meta.logicalName} With Id = ${id} Does Not Exist`);
}

/** The rows of an entity set, keyed by id. */
function tableFor(state: SimState, meta: EntityMetadata): Map<string, Row> {
  switch (meta.entitySet) {
    case 'mailboxes':
      return state.mailboxes;
    case 'emailserverprofiles':
      return state.profiles;
    case 'tracelogs':
      return state.tracelogs;
    case 'organizations':
      return new Map([[state.organization.organizationid, state.organization]]);
    default:
      throw new CrmError(404, CrmErrorCode.resourceNotFound, `Resource not found for the segment '${meta.entitySet}'.`);
  }
}

function lookupResolver(state: SimState): LookupResolver {
  return (id) => {
    const profile = state.profiles.get(id);
    if (profile) return { name: profile.name, logicalName: 'emailserverprofile' };
    const principal = state.principals.get(id);
    if (principal) return { name: principal.name, logicalName: principal.logicalName };
    const mailbox = state.mailboxes.get(id);
    if (mailbox) return { name: mailbox.name, logicalName: 'mailbox' };
    if (id === state.businessUnitId) return { name: state.organization.name, logicalName: 'businessunit' };
    return undefined;
  };
}

function recordExists(state: SimState): (entitySet: string, id: string) => boolean {
  return (entitySet, id) => {
    const meta = metadataForSet(entitySet);
    if (meta) return tableFor(state, meta).has(id);
    if (entitySet === 'systemusers' || entitySet === 'queues') {
      const principal = state.principals.get(id);
      return principal !== undefined && `${principal.logicalName}s` === entitySet;
    }
    return false;
  };
}

interface Target {
  kind: 'root' | 'whoami' | 'set' | 'row' | 'metadata' | 'user-roles';
  meta?: EntityMetadata;
  id?: string;
}

/** `systemusers(<id>)/systemuserroles_association`: the one navigation property the simulator serves. */
const USER_ROLES_PATH = /^systemusers\((?:systemuserid=)?([^)]*)\)\/systemuserroles_association$/;

function parseResource(resource: string): Target {
  const path = resource.replace(/\/+$/, '');
  if (path === '') return { kind: 'root' };
  const roles = USER_ROLES_PATH.exec(path);
  if (roles) {
    const id = roles[1] ?? '';
    if (!isGuid(id)) throw odataError(`Bad Request - Error in query syntax: '${id}' is not a valid key for 'systemusers'.`);
    return { kind: 'user-roles', id: id.toLowerCase() };
  }
  if (path === '$metadata') return { kind: 'metadata' };
  if (path === 'WhoAmI' || path === 'WhoAmI()') return { kind: 'whoami' };
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\(([^)]*)\))?$/.exec(path);
  const segment = m?.[1] ?? path.split(/[(/]/)[0] ?? path;
  const meta = m ? metadataForSet(segment) : undefined;
  if (!m || !meta) throw new CrmError(404, CrmErrorCode.resourceNotFound, `Resource not found for the segment '${segment}'.`);
  const key = m[2];
  if (key === undefined) return { kind: 'set', meta };
  const id = key.startsWith(`${meta.primaryKey}=`) ? key.slice(meta.primaryKey.length + 1) : key;
  if (!isGuid(id)) throw odataError(`Bad Request - Error in query syntax: '${key}' is not a valid key for '${meta.entitySet}'.`);
  return { kind: 'row', meta, id: id.toLowerCase() };
}

/** Handles one request; CrmErrors become error responses. Writes are recorded in `tx`. */
export function handleApiRequest(ctx: CrmApiContext, request: ApiRequest, tx: Transaction): ApiResponse {
  try {
    return route(ctx, request, tx);
  } catch (error) {
    if (error instanceof CrmError) return errorResponse(error);
    throw error;
  }
}

function route(ctx: CrmApiContext, request: ApiRequest, tx: Transaction): ApiResponse {
  const target = parseResource(request.resource);
  const method = request.method.toUpperCase();
  const state = ctx.getState();
  switch (target.kind) {
    case 'root':
      if (method !== 'GET') throw methodNotAllowed(method, request.resource);
      return jsonResponse(200, {
        '@odata.context': `${request.serviceRoot}$metadata`,
        value: allEntityMetadata.map((m) => ({ name: m.entitySet, kind: 'EntitySet', url: m.entitySet })),
      });
    case 'metadata':
      throw new CrmError(501, CrmErrorCode.methodNotAllowed, 'The simulator does not serve $metadata.');
    case 'whoami':
      if (method !== 'GET') throw methodNotAllowed(method, 'WhoAmI');
      return jsonResponse(200, {
        '@odata.context': `${request.serviceRoot}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`,
        BusinessUnitId: state.businessUnitId,
        UserId: state.callerUserId,
        OrganizationId: state.organization.organizationid,
      });
    case 'user-roles':
      if (method !== 'GET') throw methodNotAllowed(method, 'systemuserroles_association');
      return getUserRoles(ctx, request, target.id ?? '');
    case 'set': {
      const meta = target.meta ?? mailboxMetadata;
      if (method === 'GET') return getCollection(ctx, request, meta);
      if (method === 'POST' && meta.creatable) return write(ctx, `POST ${meta.entitySet}`, tx, () => createRow(ctx, request, meta, tx));
      throw methodNotAllowed(method, meta.entitySet);
    }
    case 'row': {
      const meta = target.meta ?? mailboxMetadata;
      const id = target.id ?? '';
      if (method === 'GET') return getRow(ctx, request, meta, id);
      if (method === 'PATCH' && meta.updatable) return write(ctx, `PATCH ${meta.entitySet}`, tx, () => patchRow(ctx, request, meta, id, tx));
      throw methodNotAllowed(method, `${meta.entitySet}(${id})`);
    }
  }
}

const ROLE_ATTRIBUTES = ['roleid', 'name'] as const;

/**
 * The user's security roles (N:N systemuserroles_association, served as `role` rows). Only
 * `$select` of roleid and name is supported; a user without an explicit role list has Salesperson.
 */
function getUserRoles(ctx: CrmApiContext, request: ApiRequest, userId: string): ApiResponse {
  const state = ctx.getState();
  const principal = state.principals.get(userId);
  if (principal?.logicalName !== 'systemuser') throw new CrmError(404, CrmErrorCode.objectDoesNotExist, `systemuser With Id = ${userId} Does Not Exist`);
  for (const key of request.query.keys()) {
    if (key !== '$select') throw odataError(`The query option '${key}' is not supported by the simulator on systemuserroles_association.`);
  }
  const selectText = request.query.get('$select');
  const select = selectText === null ? [...ROLE_ATTRIBUTES] : selectText.split(',').map((a) => a.trim());
  for (const attribute of select) {
    if (!(ROLE_ATTRIBUTES as readonly string[]).includes(attribute)) throw odataError(`Could not find a property named '${attribute}' on type 'Microsoft.Dynamics.CRM.role'.`);
  }
  const roles = state.userRoles.get(userId) ?? [roleNamed(DEFAULT_USER_ROLE)];
  return jsonResponse(200, {
    '@odata.context': `${request.serviceRoot}$metadata#roles(${select.join(',')})`,
    value: roles.map((role) => Object.fromEntries(select.map((a) => [a, role[a as (typeof ROLE_ATTRIBUTES)[number]]]))),
  });
}

function getCollection(ctx: CrmApiContext, request: ApiRequest, meta: EntityMetadata): ApiResponse {
  const state = ctx.getState();
  const options = parseQueryOptions(request.query, meta, false);
  const prefs = parsePrefer(request.headers.get('prefer'));
  const limit = ctx.pageSizeMax();
  // With $top, CRM ignores odata.maxpagesize and returns no nextLink.
  const maxPageSize = options.top === undefined ? prefs.maxPageSize : undefined;
  const pageSize = Math.min(maxPageSize ?? limit, limit);
  const page = runQuery(tableFor(state, meta).values(), meta, options, pageSize);
  const resolveLookup = lookupResolver(state);
  const body: Record<string, unknown> = { '@odata.context': `${request.serviceRoot}$metadata#${contextSelect(meta, options.select)}` };
  if (options.count) body['@odata.count'] = page.total;
  body.value = page.rows.map((row) =>
    projectRow(row, meta, { select: options.select, includeAnnotations: prefs.includeAnnotations, resolveLookup }),
  );
  if (page.next) {
    const params = new URLSearchParams(request.query);
    params.delete('$skiptoken');
    params.set('$skiptoken', encodeSkipToken(page.next));
    body['@odata.nextLink'] = `${request.serviceRoot}${meta.entitySet}?${params.toString().replace(/\+/g, '%20')}`;
  }
  return jsonResponse(200, body, preferenceApplied(maxPageSize, prefs.includeAnnotations));
}

function preferenceApplied(maxPageSize: number | undefined, annotations: string | undefined): Record<string, string> {
  const applied: string[] = [];
  if (maxPageSize !== undefined) applied.push(`odata.maxpagesize=${maxPageSize}`);
  if (annotations !== undefined) applied.push(`odata.include-annotations="${annotations}"`);
  return applied.length > 0 ? { 'Preference-Applied': applied.join(',') } : {};
}

function getRow(ctx: CrmApiContext, request: ApiRequest, meta: EntityMetadata, id: string): ApiResponse {
  const state = ctx.getState();
  const options = parseQueryOptions(request.query, meta, true);
  const row = tableFor(state, meta).get(id);
  if (!row) throw notFound(meta, id);
  const prefs = parsePrefer(request.headers.get('prefer'));
  return jsonResponse(
    200,
    {
      '@odata.context': `${request.serviceRoot}$metadata#${contextSelect(meta, options.select)}/$entity`,
      ...projectRow(row, meta, { select: options.select, includeAnnotations: prefs.includeAnnotations, resolveLookup: lookupResolver(state) }),
    },
    preferenceApplied(undefined, prefs.includeAnnotations),
  );
}

/** If-Match: `*` or a list of etags; If-None-Match: `*` forbids updating an existing row. */
function checkPreconditions(request: ApiRequest, meta: EntityMetadata, id: string, row: Row | undefined): void {
  const ifMatch = request.headers.get('if-match');
  const ifNoneMatch = request.headers.get('if-none-match');
  // Without If-Match CRM would create a missing row (upsert); the simulator answers 404 either way.
  if (!row) throw notFound(meta, id);
  if (ifNoneMatch?.trim() === '*') {
    throw new CrmError(412, CrmErrorCode.concurrency, `A record with matching key values already exists.`);
  }
  if (ifMatch && ifMatch.trim() !== '*') {
    const current = `W/"${String(row.versionnumber)}"`;
    const tags = ifMatch.split(',').map((t) => t.trim());
    if (!tags.includes(current)) {
      throw new CrmError(412, CrmErrorCode.concurrency, "The version of the existing record doesn't match the RowVersion property provided.");
    }
  }
}

function patchRow(ctx: CrmApiContext, request: ApiRequest, meta: EntityMetadata, id: string, tx: Transaction): ApiResponse {
  const state = ctx.getState();
  const row = tableFor(state, meta).get(id);
  checkPreconditions(request, meta, id, row);
  if (!row) throw notFound(meta, id);
  const changes = validateChanges(meta, parseJsonObject(request.body), recordExists(state));
  if (meta === mailboxMetadata) mailboxRules(ctx, row as unknown as MailboxRecord, changes, tx);
  const before = { ...row };
  tx.undo.push(() => {
    Object.assign(row, before);
  });
  for (const [name, value] of changes) row[name] = value;
  const now = crmDateTime(ctx.now());
  if ('modifiedon' in row) row.modifiedon = now;
  if (typeof row.versionnumber === 'number') row.versionnumber += 1;
  const entityId = `${request.serviceRoot}${meta.entitySet}(${id})`;
  if (parsePrefer(request.headers.get('prefer')).returnRepresentation) {
    return jsonResponse(200, {
      '@odata.context': `${request.serviceRoot}$metadata#${meta.entitySet}/$entity`,
      ...projectRow(row, meta, { select: undefined, includeAnnotations: undefined, resolveLookup: lookupResolver(state) }),
    }, { 'OData-EntityId': entityId, 'Preference-Applied': 'return=representation' });
  }
  return noContent({ 'OData-EntityId': entityId });
}

/**
 * What CRM does around a mailbox update: approving needs prvApproveRejectEmailAddress; a new
 * address needs approval again; setting testemailconfigurationscheduled queues Test & Enable
 * (once the transaction commits) and clearing it drops a pending run.
 */
function mailboxRules(ctx: CrmApiContext, mailbox: MailboxRecord, changes: Changes, tx: Transaction): void {
  const state = ctx.getState();
  if (changes.has('emailrouteraccessapproval')) {
    const owner = state.principals.get(mailbox._ownerid_value);
    if (owner && !owner.hasApprovePrivilege) {
      throw new CrmError(
        403,
        CrmErrorCode.privilege,
        `Principal user (Id=${owner.id}, type=8, roleCount=1, privilegeCount=640, accessMode=0) is missing prvApproveRejectEmailAddress privilege (Id=${APPROVE_PRIVILEGE_ID}) on OTC=9606 for entity 'mailbox'.`,
      );
    }
  }
  const newAddress = changes.get('emailaddress');
  if (
    typeof newAddress === 'string' &&
    newAddress.toLowerCase() !== (mailbox.emailaddress ?? '').toLowerCase() &&
    !changes.has('emailrouteraccessapproval')
  ) {
    changes.set('emailrouteraccessapproval', EmailRouterAccessApproval.Empty);
    for (const status of ['incomingemailstatus', 'outgoingemailstatus', 'actstatus', 'mailboxstatus'] as const) {
      changes.set(status, MailboxTestStatus.NotRun);
    }
  }
  const scheduled = changes.get('testemailconfigurationscheduled');
  const id = mailbox.mailboxid;
  if (scheduled === true) tx.afterCommit.push(() => void ctx.engine.schedule(id));
  if (scheduled === false) tx.afterCommit.push(() => void ctx.engine.cancel(id));
}

/** The id CRM gives prvApproveRejectEmailAddress (unverified; any stable GUID serves the simulator). */
const APPROVE_PRIVILEGE_ID = '1e2aa3d3-b8f9-4d4b-9e41-6c5a5a0c0d9a';

/** POST to a creatable set (email server profiles). */
function createRow(ctx: CrmApiContext, request: ApiRequest, meta: EntityMetadata, tx: Transaction): ApiResponse {
  const state = ctx.getState();
  const changes = validateChanges(meta, parseJsonObject(request.body), recordExists(state));
  const name = changes.get('name');
  if (typeof name !== 'string' || name.trim() === '') {
    throw new CrmError(400, CrmErrorCode.outOfRange, `A validation error occurred. The value of 'name' on record of type '${meta.logicalName}' is required.`);
  }
  const id = ctx.newId();
  const record = newProfileRecord(id, state.callerUserId, crmDateTime(ctx.now()));
  const row = record as unknown as Row;
  for (const [key, value] of changes) row[key] = value;
  state.profiles.set(id, record);
  tx.undo.push(() => {
    state.profiles.delete(id);
  });
  const entityId = `${request.serviceRoot}${meta.entitySet}(${id})`;
  if (parsePrefer(request.headers.get('prefer')).returnRepresentation) {
    return jsonResponse(201, {
      '@odata.context': `${request.serviceRoot}$metadata#${meta.entitySet}/$entity`,
      ...projectRow(row, meta, { select: undefined, includeAnnotations: undefined, resolveLookup: lookupResolver(state) }),
    }, { 'OData-EntityId': entityId, Location: entityId, 'Preference-Applied': 'return=representation' });
  }
  return noContent({ 'OData-EntityId': entityId, Location: entityId });
}
