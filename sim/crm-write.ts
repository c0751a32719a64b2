import { StateCode } from '../jobs/crm-values.ts';
import { CrmError, CrmErrorCode, odataError } from './crm-error.ts';
import {
  attributeForNavigation,
  crmTypeName,
  edmType,
  type AttrValue,
  type AttributeMetadata,
  type EntityMetadata,
} from './entity-metadata.ts';
import { crmDateTime } from './sim-state.ts';

/**
 * Validation of a PATCH/POST body against the metadata, the way CRM answers: unknown attributes
 * and read-only attributes are refused with 400, option values outside their set with 400, and a
 * bind must name an existing record of an allowed set.
 */
export type Changes = Map<string, AttrValue>;

/** Finds a record by entity set and id (for binds). */
export type RecordExists = (entitySet: string, id: string) => boolean;

const guidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isGuid(text: string): boolean {
  return guidRe.test(text);
}

export function parseJsonObject(body: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body === '' ? '{}' : body);
  } catch {
    throw odataError('The request body is not valid JSON: an unexpected character was found while reading the payload.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw odataError('The request body must be a JSON object with the attributes to set.');
  }
  return value as Record<string, unknown>;
}

function invalidProperty(meta: EntityMetadata, name: string): CrmError {
  return odataError(
    `Invalid property '${name}' was found in entity '${crmTypeName(meta)}': the type '${crmTypeName(meta)}' does not have a property named '${name}'.`,
  );
}

function convert(meta: EntityMetadata, attribute: AttributeMetadata, value: unknown): AttrValue {
  const name = attribute.name;
  const wrongType = (): CrmError =>
    odataError(`Cannot convert the literal '${JSON.stringify(value)}' to the expected type '${edmType(attribute)}' for the property '${name}'.`);
  const outOfRange = (detail: string): CrmError =>
    new CrmError(400, CrmErrorCode.outOfRange, `A validation error occurred. The value ${JSON.stringify(value)} of '${name}' on record of type '${meta.logicalName}' is outside the valid range. ${detail}`);
  switch (attribute.type) {
    case 'string':
    case 'memo':
      if (value === null) return null;
      if (typeof value !== 'string') throw wrongType();
      if (attribute.maxLength !== undefined && value.length > attribute.maxLength) {
        throw new CrmError(400, CrmErrorCode.outOfRange, `A validation error occurred. The length of the '${name}' attribute of the '${meta.logicalName}' entity exceeded the maximum allowed length of '${attribute.maxLength}'.`);
      }
      return value;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) throw wrongType();
      if ((attribute.min !== undefined && value < attribute.min) || (attribute.max !== undefined && value > attribute.max)) {
        throw outOfRange(`Accepted values: ${attribute.min ?? '-2147483648'} to ${attribute.max ?? '2147483647'}.`);
      }
      return value;
    case 'option': {
      if (typeof value !== 'number' || !Number.isInteger(value)) throw wrongType();
      const options = attribute.options ?? {};
      if (!(value in options)) throw outOfRange(`Accepted Values: ${Object.keys(options).join(',')}`);
      return value;
    }
    case 'boolean':
      if (typeof value !== 'boolean') throw wrongType();
      return value;
    case 'datetime': {
      if (value === null) return null;
      if (typeof value !== 'string') throw wrongType();
      const ms = Date.parse(value);
      if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(value) || Number.isNaN(ms)) throw wrongType();
      return crmDateTime(ms);
    }
    case 'guid':
    case 'lookup':
      throw invalidProperty(meta, name);
  }
}

/** Parses `/emailserverprofiles(<id>)`, `emailserverprofiles(<id>)` or an absolute URL ending so. */
function parseBind(value: unknown): { entitySet: string; id: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /(?:^|\/)([A-Za-z_][A-Za-z0-9_]*)\(([^)]+)\)$/.exec(value.trim());
  if (!m || !isGuid(m[2] ?? '')) return undefined;
  return { entitySet: m[1] ?? '', id: (m[2] ?? '').toLowerCase() };
}

/** Turns a PATCH/POST body into attribute changes (POST may set the same attributes as PATCH). */
export function validateChanges(meta: EntityMetadata, body: Record<string, unknown>, exists: RecordExists): Changes {
  const changes: Changes = new Map();
  for (const [key, value] of Object.entries(body)) {
    if (key.startsWith('@')) continue; // @odata.type and other instance annotations
    const at = key.indexOf('@');
    if (at > 0) {
      const property = key.slice(0, at);
      const annotation = key.slice(at + 1);
      if (annotation !== 'odata.bind') continue; // other property annotations are ignored
      const attribute = attributeForNavigation(meta, property);
      if (!attribute) {
        throw odataError(
          `An undeclared property '${property}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.`,
        );
      }
      if (!attribute.writable) {
        throw new CrmError(400, CrmErrorCode.notValidForUpdate, `The navigation property '${property}' of '${meta.logicalName}' cannot be set.`);
      }
      if (value === null) {
        changes.set(attribute.name, null);
        continue;
      }
      const bind = parseBind(value);
      if (!bind || !(attribute.lookup?.targetSets ?? []).includes(bind.entitySet)) {
        throw odataError(`The value of '${key}' is not a valid reference: expected '/${attribute.lookup?.targetSets[0] ?? ''}(<id>)'.`);
      }
      if (!exists(bind.entitySet, bind.id)) {
        const logical = bind.entitySet.replace(/s$/, '');
        throw new CrmError(404, CrmErrorCode.objectDoesNotExist, `${logical} With Id = ${bind.id} Does Not Exist`);
      }
      changes.set(attribute.name, bind.id);
      continue;
    }
    const attribute = meta.attributes.get(key);
    if (!attribute || attribute.type === 'lookup') throw invalidProperty(meta, key);
    if (attribute.readOnly || !attribute.writable) {
      throw new CrmError(
        400,
        CrmErrorCode.notValidForUpdate,
        `The attribute '${key}' of entity '${meta.logicalName}' is not valid for update: it is set by the system${attribute.readOnly ? ' (read-only)' : ''}.`,
      );
    }
    changes.set(key, convert(meta, attribute, value));
  }
  if (meta.logicalName === 'mailbox' && changes.has('statecode')) {
    changes.set('statuscode', changes.get('statecode') === StateCode.Inactive ? 2 : 1);
  }
  return changes;
}
