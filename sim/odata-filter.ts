import type { CrmError} from './crm-error.ts';
import { odataError } from './crm-error.ts';
import { crmTypeName, edmType, type AttributeMetadata, type EntityMetadata, type Row } from './entity-metadata.ts';

/**
 * A small OData $filter implementation: tokenizer, recursive-descent parser, and a compiler to a
 * row predicate. No eval. Supports `eq ne gt ge lt le and or not`, parentheses,
 * `endswith/startswith/contains(attr,'text')`, and literals: single-quoted strings ('' escapes a
 * quote), integers and decimals, true/false, null, bare GUIDs, bare ISO date-times and dates.
 * Property names and operators are case-sensitive, as in CRM; string comparisons are
 * case-insensitive, as in CRM (SQL collation).
 */

type TokenKind = 'lparen' | 'rparen' | 'comma' | 'string' | 'number' | 'guid' | 'datetime' | 'date' | 'identifier' | 'eof';

interface Token {
  kind: TokenKind;
  text: string;
  /** Decoded value for string literals. */
  value: string;
  position: number;
}

export type Literal =
  | { type: 'string'; value: string }
  | { type: 'integer' | 'decimal'; value: number }
  | { type: 'boolean'; value: boolean }
  | { type: 'null' }
  | { type: 'guid'; value: string }
  | { type: 'datetime' | 'date'; value: number; text: string };

export type ComparisonOperator = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';
export type StringFunction = 'endswith' | 'startswith' | 'contains';

export type FilterNode =
  | { kind: 'and' | 'or'; left: FilterNode; right: FilterNode }
  | { kind: 'not'; operand: FilterNode }
  | { kind: 'compare'; operator: ComparisonOperator; attribute: AttributeMetadata; literal: Literal }
  | { kind: 'function'; name: StringFunction; attribute: AttributeMetadata; text: string };

const MAX_DEPTH = 100;
const MAX_LENGTH = 32_768;

const operatorKinds: Record<ComparisonOperator, string> = {
  eq: 'Equal',
  ne: 'NotEqual',
  gt: 'GreaterThan',
  ge: 'GreaterThanOrEqual',
  lt: 'LessThan',
  le: 'LessThanOrEqual',
};
const comparisonOperators = new Set<string>(Object.keys(operatorKinds));
const stringFunctions = new Set<string>(['endswith', 'startswith', 'contains']);

const patterns: ReadonlyArray<readonly [TokenKind, RegExp]> = [
  ['datetime', /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})/y],
  ['guid', /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/y],
  ['date', /\d{4}-\d{2}-\d{2}/y],
  ['number', /-?\d+(?:\.\d+)?/y],
  ['identifier', /[A-Za-z_][A-Za-z0-9_]*/y],
];

function syntaxError(text: string, position: number, detail?: string): CrmError {
  return odataError(`${detail ? `${detail} ` : 'Syntax error '}at position ${position} in '${text}'.`);
}

export function tokenizeFilter(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const isDelimiter = (c: string | undefined): boolean => c === undefined || /[\s(),]/.test(c);
  while (i < text.length) {
    const c = text[i] ?? '';
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      tokens.push({ kind: c === '(' ? 'lparen' : c === ')' ? 'rparen' : 'comma', text: c, value: c, position: i });
      i++;
      continue;
    }
    if (c === "'") {
      const start = i;
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) throw syntaxError(text, start, 'There is an unterminated string literal');
        const ch = text[i] ?? '';
        if (ch === "'") {
          if (text[i + 1] === "'") {
            value += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += ch;
        i++;
      }
      if (!isDelimiter(text[i])) throw syntaxError(text, i);
      tokens.push({ kind: 'string', text: text.slice(start, i), value, position: start });
      continue;
    }
    let matched = false;
    for (const [kind, pattern] of patterns) {
      pattern.lastIndex = i;
      const m = pattern.exec(text);
      if (!m) continue;
      const end = i + m[0].length;
      if (!isDelimiter(text[end])) continue;
      tokens.push({ kind, text: m[0], value: m[0], position: i });
      i = end;
      matched = true;
      break;
    }
    if (!matched) throw syntaxError(text, i, `Syntax error: character '${c}' is not valid`);
  }
  tokens.push({ kind: 'eof', text: '', value: '', position: text.length });
  return tokens;
}

type Operand = { kind: 'property'; attribute: AttributeMetadata } | { kind: 'literal'; literal: Literal; edm: string };

class FilterParser {
  private index = 0;
  private depth = 0;

  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
    private readonly meta: EntityMetadata,
  ) {}

  parse(): FilterNode {
    const node = this.parseOr();
    const next = this.peek();
    if (next.kind !== 'eof') throw syntaxError(this.text, next.position);
    return node;
  }

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.index + offset, this.tokens.length - 1)] ?? { kind: 'eof', text: '', value: '', position: this.text.length };
  }

  private take(): Token {
    const token = this.peek();
    if (token.kind !== 'eof') this.index++;
    return token;
  }

  private isKeyword(word: string): boolean {
    const token = this.peek();
    return token.kind === 'identifier' && token.text === word;
  }

  private expect(kind: TokenKind): Token {
    const token = this.take();
    if (token.kind !== kind) throw syntaxError(this.text, token.position);
    return token;
  }

  private parseOr(): FilterNode {
    let left = this.parseAnd();
    while (this.isKeyword('or')) {
      this.take();
      left = { kind: 'or', left, right: this.parseAnd() };
    }
    return left;
  }

  private parseAnd(): FilterNode {
    let left = this.parseUnary();
    while (this.isKeyword('and')) {
      this.take();
      left = { kind: 'and', left, right: this.parseUnary() };
    }
    return left;
  }

  private parseUnary(): FilterNode {
    if (++this.depth > MAX_DEPTH) throw odataError(`The $filter expression is nested more than ${MAX_DEPTH} levels deep.`);
    try {
      if (this.isKeyword('not')) {
        this.take();
        return { kind: 'not', operand: this.parseUnary() };
      }
      return this.parsePrimary();
    } finally {
      this.depth--;
    }
  }

  private parsePrimary(): FilterNode {
    const token = this.peek();
    if (token.kind === 'lparen') {
      this.take();
      const inner = this.parseOr();
      this.expect('rparen');
      return inner;
    }
    if (token.kind === 'identifier' && this.peek(1).kind === 'lparen') return this.parseFunction();
    const left = this.parseOperand();
    const operatorToken = this.take();
    if (operatorToken.kind !== 'identifier' || !comparisonOperators.has(operatorToken.text)) {
      throw syntaxError(this.text, operatorToken.position);
    }
    const operator = operatorToken.text as ComparisonOperator;
    const right = this.parseOperand();
    return this.comparison(operator, left, right, token.position);
  }

  private parseFunction(): FilterNode {
    const nameToken = this.take();
    const name = nameToken.text;
    if (!stringFunctions.has(name)) {
      throw odataError(`An unknown function with name '${name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.`);
    }
    this.expect('lparen');
    const first = this.parseOperand();
    this.expect('comma');
    const second = this.parseOperand();
    this.expect('rparen');
    if (
      first.kind !== 'property' ||
      (first.attribute.type !== 'string' && first.attribute.type !== 'memo') ||
      second.kind !== 'literal' ||
      second.literal.type !== 'string'
    ) {
      throw odataError(
        `No function signature for the function with name '${name}' matches the specified arguments. ` +
          `The function signatures considered are: ${name}(Edm.String Nullable=true, Edm.String Nullable=true).`,
      );
    }
    return { kind: 'function', name: name as StringFunction, attribute: first.attribute, text: second.literal.value };
  }

  private parseOperand(): Operand {
    const token = this.take();
    switch (token.kind) {
      case 'string':
        return { kind: 'literal', literal: { type: 'string', value: token.value }, edm: 'Edm.String' };
      case 'number': {
        const isInteger = /^-?\d+$/.test(token.text);
        const value = Number(token.text);
        if (isInteger && !Number.isSafeInteger(value)) throw odataError(`The literal '${token.text}' is out of range.`);
        return isInteger
          ? { kind: 'literal', literal: { type: 'integer', value }, edm: 'Edm.Int32' }
          : { kind: 'literal', literal: { type: 'decimal', value }, edm: 'Edm.Decimal' };
      }
      case 'guid':
        return { kind: 'literal', literal: { type: 'guid', value: token.text.toLowerCase() }, edm: 'Edm.Guid' };
      case 'datetime':
      case 'date': {
        const value = Date.parse(token.kind === 'date' ? `${token.text}T00:00:00Z` : token.text);
        if (Number.isNaN(value)) throw odataError(`The date-time literal '${token.text}' is not valid.`);
        return {
          kind: 'literal',
          literal: { type: token.kind, value, text: token.text },
          edm: token.kind === 'date' ? 'Edm.Date' : 'Edm.DateTimeOffset',
        };
      }
      case 'identifier': {
        if (token.text === 'true' || token.text === 'false') {
          return { kind: 'literal', literal: { type: 'boolean', value: token.text === 'true' }, edm: 'Edm.Boolean' };
        }
        if (token.text === 'null') return { kind: 'literal', literal: { type: 'null' }, edm: 'null' };
        if (this.peek().kind === 'lparen') throw syntaxError(this.text, token.position);
        const attribute = this.meta.attributes.get(token.text);
        if (!attribute) {
          throw odataError(`Could not find a property named '${token.text}' on type '${crmTypeName(this.meta)}'.`);
        }
        return { kind: 'property', attribute };
      }
      default:
        throw syntaxError(this.text, token.position, token.kind === 'eof' ? 'Expression expected' : undefined);
    }
  }

  private comparison(operator: ComparisonOperator, left: Operand, right: Operand, position: number): FilterNode {
    // literal op property is the same comparison mirrored.
    if (left.kind === 'literal' && right.kind === 'property') {
      const mirrored: Record<ComparisonOperator, ComparisonOperator> = { eq: 'eq', ne: 'ne', gt: 'lt', ge: 'le', lt: 'gt', le: 'ge' };
      return this.comparison(mirrored[operator], right, left, position);
    }
    if (left.kind !== 'property' || right.kind !== 'literal') {
      throw odataError(
        left.kind === 'property'
          ? `Comparing two attributes is not supported (position ${position} in '${this.text}').`
          : `A comparison must name an attribute (position ${position} in '${this.text}').`,
      );
    }
    const { attribute } = left;
    const { literal } = right;
    if (!compatible(attribute, literal)) {
      throw odataError(
        `A binary operator with incompatible types was detected. Found operand types '${edmType(attribute)}' and '${right.edm}' for operator kind '${operatorKinds[operator]}'.`,
      );
    }
    return { kind: 'compare', operator, attribute, literal };
  }
}

function compatible(attribute: AttributeMetadata, literal: Literal): boolean {
  if (literal.type === 'null') return true;
  switch (attribute.type) {
    case 'string':
    case 'memo':
      return literal.type === 'string';
    case 'integer':
    case 'option':
      return literal.type === 'integer' || literal.type === 'decimal';
    case 'boolean':
      return literal.type === 'boolean';
    case 'guid':
    case 'lookup':
      return literal.type === 'guid';
    case 'datetime':
      return literal.type === 'datetime' || literal.type === 'date';
  }
}

/** Parses a $filter against an entity's attributes. Throws CrmError (400) on any problem. */
export function parseFilter(text: string, meta: EntityMetadata): FilterNode {
  if (text.length > MAX_LENGTH) throw odataError(`The $filter is longer than ${MAX_LENGTH} characters.`);
  if (text.trim() === '') throw syntaxError(text, 0, 'Expression expected');
  return new FilterParser(text, tokenizeFilter(text), meta).parse();
}

export type RowPredicate = (row: Row) => boolean;

function compareValues(a: number | string, b: number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function testOrder(operator: ComparisonOperator, order: number): boolean {
  switch (operator) {
    case 'eq':
      return order === 0;
    case 'ne':
      return order !== 0;
    case 'gt':
      return order > 0;
    case 'ge':
      return order >= 0;
    case 'lt':
      return order < 0;
    case 'le':
      return order <= 0;
  }
}

function compileNode(node: FilterNode): RowPredicate {
  switch (node.kind) {
    case 'and': {
      const l = compileNode(node.left);
      const r = compileNode(node.right);
      return (row) => l(row) && r(row);
    }
    case 'or': {
      const l = compileNode(node.left);
      const r = compileNode(node.right);
      return (row) => l(row) || r(row);
    }
    case 'not': {
      const inner = compileNode(node.operand);
      return (row) => !inner(row);
    }
    case 'function': {
      const name = node.attribute.name;
      const needle = node.text.toLowerCase();
      const test =
        node.name === 'endswith'
          ? (s: string) => s.endsWith(needle)
          : node.name === 'startswith'
            ? (s: string) => s.startsWith(needle)
            : (s: string) => s.includes(needle);
      return (row) => {
        const value = row[name];
        return typeof value === 'string' && test(value.toLowerCase());
      };
    }
    case 'compare': {
      const { operator, literal } = node;
      const name = node.attribute.name;
      if (literal.type === 'null') {
        if (operator === 'eq') return (row) => row[name] === null || row[name] === undefined;
        if (operator === 'ne') return (row) => row[name] !== null && row[name] !== undefined;
        return () => false;
      }
      // Null values: only `ne` holds (OData semantics).
      const onNull = operator === 'ne';
      let key: (value: string | number | boolean) => number | string;
      let target: number | string;
      switch (literal.type) {
        case 'string':
        case 'guid':
          key = (value) => String(value).toLowerCase();
          target = literal.value.toLowerCase();
          break;
        case 'integer':
        case 'decimal':
          key = (value) => Number(value);
          target = literal.value;
          break;
        case 'boolean':
          key = (value) => (value === true ? 1 : 0);
          target = literal.value ? 1 : 0;
          break;
        case 'datetime':
        case 'date':
          key = (value) => Date.parse(String(value));
          target = literal.value;
          break;
      }
      return (row) => {
        const value = row[name];
        if (value === null || value === undefined) return onNull;
        return testOrder(operator, compareValues(key(value), target));
      };
    }
  }
}

/** Parses and compiles a $filter into a predicate over rows. */
export function compileFilter(text: string, meta: EntityMetadata): RowPredicate {
  return compileNode(parseFilter(text, meta));
}
