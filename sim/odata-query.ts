import { odataError } from './crm-error.ts';
import { crmTypeName, type AttributeMetadata, type EntityMetadata, type Row } from './entity-metadata.ts';
import { compileFilter, type RowPredicate } from './odata-filter.ts';

/**
 * The OData system query options the simulator honours ($select, $filter, $top, $orderby,
 * $count, $skiptoken), the Prefer header, paging and the projection of rows into JSON.
 */
export interface OrderBy {
  attribute: AttributeMetadata;
  descending: boolean;
}

/** Where the next page starts: after a primary key (default order) or at an offset ($orderby). */
export type SkipToken = { afterKey: string } | { offset: number };

export interface QueryOptions {
  select: AttributeMetadata[] | undefined;
  filter: RowPredicate | undefined;
  top: number | undefined;
  orderBy: OrderBy[];
  count: boolean;
  skipToken: SkipToken | undefined;
}

const supported = new Set(['$select', '$filter', '$top', '$orderby', '$count', '$skiptoken']);
const singleSupported = new Set(['$select']);

function unknownProperty(meta: EntityMetadata, name: string): Error {
  return odataError(`Could not find a property named '${name}' on type '${crmTypeName(meta)}'.`);
}

export function encodeSkipToken(token: SkipToken): string {
  return Buffer.from(JSON.stringify(token), 'utf8').toString('base64url');
}

export function decodeSkipToken(text: string): SkipToken {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null) {
      if ('afterKey' in value && typeof value.afterKey === 'string') return { afterKey: value.afterKey };
      if ('offset' in value && typeof value.offset === 'number' && Number.isInteger(value.offset) && value.offset >= 0) {
        return { offset: value.offset };
      }
    }
  } catch {
    // fall through
  }
  throw odataError(`The $skiptoken '${text.slice(0, 100)}' is not valid.`);
}

/** Parses the query string of a GET on a set (collection) or on one row (single). */
export function parseQueryOptions(params: URLSearchParams, meta: EntityMetadata, single: boolean): QueryOptions {
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!name.startsWith('$')) continue; // custom query options are ignored, as in OData
    if (seen.has(name)) throw odataError(`Query option '${name}' was specified more than once, but it must be specified at most once.`);
    seen.add(name);
    if (!supported.has(name)) throw odataError(`The query parameter '${name}' is not supported by the simulator.`);
    if (single && !singleSupported.has(name)) throw odataError(`The query parameter '${name}' is not allowed when reading one record.`);
  }
  const options: QueryOptions = { select: undefined, filter: undefined, top: undefined, orderBy: [], count: false, skipToken: undefined };

  const select = params.get('$select');
  if (select !== null) {
    options.select = select.split(',').map((raw) => {
      const name = raw.trim();
      const attribute = meta.attributes.get(name);
      if (!attribute) throw unknownProperty(meta, name);
      return attribute;
    });
  }
  const filter = params.get('$filter');
  if (filter !== null) options.filter = compileFilter(filter, meta);
  const top = params.get('$top');
  if (top !== null) {
    if (!/^\d+$/.test(top.trim())) throw odataError(`Invalid value '${top}' for $top query option found. The $top query option requires a non-negative integer value.`);
    options.top = Number(top.trim());
  }
  const orderBy = params.get('$orderby');
  if (orderBy !== null) {
    options.orderBy = orderBy.split(',').map((clause) => {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?\s*$/.exec(clause);
      if (!m) throw odataError(`Syntax error in $orderby clause '${clause.trim()}'.`);
      const attribute = meta.attributes.get(m[1] ?? '');
      if (!attribute) throw unknownProperty(meta, m[1] ?? '');
      return { attribute, descending: m[2] === 'desc' };
    });
  }
  const count = params.get('$count');
  if (count !== null) {
    if (count !== 'true' && count !== 'false') throw odataError(`'${count}' is not a valid count option.`);
    options.count = count === 'true';
  }
  const skipToken = params.get('$skiptoken');
  if (skipToken !== null) options.skipToken = decodeSkipToken(skipToken);
  return options;
}

export interface Preferences {
  maxPageSize: number | undefined;
  /** The include-annotations value, e.g. `*` or `OData.Community.Display.V1.FormattedValue`. */
  includeAnnotations: string | undefined;
  continueOnError: boolean;
  returnRepresentation: boolean;
}

/** Splits on a separator that is not inside double quotes. */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    if (c === separator && !quoted) {
      out.push(current);
      current = '';
    } else current += c;
  }
  out.push(current);
  return out;
}

/** Parses Prefer header(s): comma-separated preferences, values optionally quoted. */
export function parsePrefer(header: string | undefined): Preferences {
  const prefs: Preferences = { maxPageSize: undefined, includeAnnotations: undefined, continueOnError: false, returnRepresentation: false };
  if (!header) return prefs;
  for (const item of splitOutsideQuotes(header, ',')) {
    const preference = splitOutsideQuotes(item, ';')[0] ?? '';
    const eq = preference.indexOf('=');
    const name = (eq < 0 ? preference : preference.slice(0, eq)).trim().toLowerCase();
    let value = eq < 0 ? '' : preference.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name === 'odata.maxpagesize' && /^\d+$/.test(value) && Number(value) > 0) prefs.maxPageSize = Number(value);
    else if (name === 'odata.include-annotations' && value) prefs.includeAnnotations = value;
    else if (name === 'odata.continue-on-error') prefs.continueOnError = value === '' || value === 'true';
    else if (name === 'return' && value === 'representation') prefs.returnRepresentation = true;
  }
  return prefs;
}

/** Whether an include-annotations preference asks for an annotation (`*`, exact, `ns.*`, `-excluded`). */
export function annotationIncluded(preference: string | undefined, annotation: string): boolean {
  if (!preference) return false;
  let included = false;
  for (const raw of preference.split(',')) {
    const pattern = raw.trim();
    const exclude = pattern.startsWith('-');
    const p = exclude ? pattern.slice(1) : pattern;
    const matches = p === '*' || p === annotation || (p.endsWith('.*') && annotation.startsWith(p.slice(0, -1)));
    if (matches && exclude) return false;
    if (matches) included = true;
  }
  return included;
}

export interface PageResult {
  rows: Row[];
  total: number;
  next: SkipToken | undefined;
}

function sortKey(value: Row[string] | undefined): string | number {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value.toLowerCase();
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

function compare(a: string | number, b: string | number): number {
  if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
  return typeof a === 'string' ? -1 : 1; // nulls ('') sort first
}

/**
 * Filters, orders and pages rows. Without $orderby rows come in primary-key order and the next
 * page starts after the last key, so rows changed while a client pages do not shift later pages
 * (as CRM's paging cookie). With $orderby the skip token is an offset.
 */
export function runQuery(rows: Iterable<Row>, meta: EntityMetadata, options: QueryOptions, pageSize: number): PageResult {
  const key = meta.primaryKey;
  const matched: Row[] = [];
  for (const row of rows) if (!options.filter || options.filter(row)) matched.push(row);
  const orderBy = options.orderBy;
  if (orderBy.length > 0) {
    matched.sort((a, b) => {
      for (const { attribute, descending } of orderBy) {
        const c = compare(sortKey(a[attribute.name]), sortKey(b[attribute.name]));
        if (c !== 0) return descending ? -c : c;
      }
      return compare(String(a[key]), String(b[key]));
    });
  } else {
    matched.sort((a, b) => compare(String(a[key]), String(b[key])));
  }
  const total = matched.length;
  if (options.top !== undefined) return { rows: matched.slice(0, Math.min(options.top, pageSize)), total, next: undefined };

  let start = 0;
  const token = options.skipToken;
  if (token && 'offset' in token) start = token.offset;
  else if (token) {
    const after = token.afterKey;
    start = matched.findIndex((row) => String(row[key]) > after);
    if (start < 0) start = matched.length;
  }
  const page = matched.slice(start, start + pageSize);
  const end = start + page.length;
  const last = page[page.length - 1];
  let next: SkipToken | undefined;
  if (end < matched.length && last) next = orderBy.length > 0 ? { offset: end } : { afterKey: String(last[key]) };
  return { rows: page, total, next };
}

/** Resolves a lookup's target for its annotations (name and logical name). */
export type LookupResolver = (id: string) => { name: string; logicalName: string } | undefined;

export interface ProjectionOptions {
  select: AttributeMetadata[] | undefined;
  includeAnnotations: string | undefined;
  resolveLookup: LookupResolver;
}

const FORMATTED = 'OData.Community.Display.V1.FormattedValue';
const LOOKUP_LOGICAL_NAME = 'Microsoft.Dynamics.CRM.lookuplogicalname';
const ASSOCIATED_NAVIGATION = 'Microsoft.Dynamics.CRM.associatednavigationproperty';

/** A row as CRM writes it in JSON: etag, selected attributes (key always), optional annotations. */
export function projectRow(row: Row, meta: EntityMetadata, options: ProjectionOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof row.versionnumber === 'number') out['@odata.etag'] = `W/"${row.versionnumber}"`;
  const attributes = options.select ?? [...meta.attributes.values()];
  const formatted = annotationIncluded(options.includeAnnotations, FORMATTED);
  const logicalName = annotationIncluded(options.includeAnnotations, LOOKUP_LOGICAL_NAME);
  const navigation = annotationIncluded(options.includeAnnotations, ASSOCIATED_NAVIGATION);
  for (const attribute of attributes) {
    const value = row[attribute.name] ?? null;
    if (formatted && value !== null) {
      if (attribute.options && (typeof value === 'number' || typeof value === 'boolean')) {
        const label = attribute.options[typeof value === 'boolean' ? (value ? 1 : 0) : value];
        if (label !== undefined) out[`${attribute.name}@${FORMATTED}`] = label;
      } else if (attribute.type === 'integer' && typeof value === 'number') {
        out[`${attribute.name}@${FORMATTED}`] = value.toLocaleString('en-US');
      }
    }
    if (attribute.type === 'lookup' && value !== null && typeof value === 'string') {
      const target = options.resolveLookup(value);
      if (formatted && target) out[`${attribute.name}@${FORMATTED}`] = target.name;
      if (navigation && attribute.lookup) out[`${attribute.name}@${ASSOCIATED_NAVIGATION}`] = attribute.lookup.navigation;
      if (logicalName && target) out[`${attribute.name}@${LOOKUP_LOGICAL_NAME}`] = target.logicalName;
    }
    out[attribute.name] = value;
  }
  if (!(meta.primaryKey in out)) out[meta.primaryKey] = row[meta.primaryKey] ?? null;
  return out;
}

/** The `$select` part of an @odata.context URL: `mailboxes(mailboxid,emailaddress)`. */
export function contextSelect(meta: EntityMetadata, select: AttributeMetadata[] | undefined): string {
  return select ? `${meta.entitySet}(${select.map((a) => a.name).join(',')})` : meta.entitySet;
}
