/**
 * Query options for the Web API. Values are percent-encoded (spaces as %20, never '+'); option
 * names keep their '$' as OData expects. Filters reaching here come from jobs/mailbox-filter.ts
 * `toODataFilter` or from literals built with its `odataString`/`odataGuid`: never from raw input.
 */
export interface QueryOptions {
  select?: readonly string[];
  filter?: string;
  orderby?: string;
  top?: number;
}

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function buildQuery(options: QueryOptions): string {
  const parts: string[] = [];
  if (options.select && options.select.length > 0) {
    for (const name of options.select) {
      if (!identifier.test(name)) throw new Error(`not an attribute name: ${JSON.stringify(name)}`);
    }
    parts.push(`$select=${options.select.join(',')}`);
  }
  if (options.filter !== undefined) parts.push(`$filter=${encodeODataValue(options.filter)}`);
  if (options.orderby !== undefined) parts.push(`$orderby=${encodeODataValue(options.orderby)}`);
  if (options.top !== undefined) parts.push(`$top=${Math.trunc(options.top)}`);
  return parts.join('&');
}

/** encodeURIComponent, which leaves ' ( ) unencoded and writes spaces as %20, as OData servers expect. */
export function encodeODataValue(value: string): string {
  return encodeURIComponent(value);
}

/** An entity set or path segment name (mailboxes, emailserverprofiles, WhoAmI, $batch). */
export function assertSetName(set: string): string {
  if (!/^\$?[A-Za-z_][A-Za-z0-9_]*$/.test(set)) throw new Error(`not an entity set name: ${JSON.stringify(set)}`);
  return set;
}
