import { odataError } from './crm-error.ts';

/**
 * multipart/mixed as OData $batch uses it (RFC 2046 with application/http parts): parse the
 * request body into parts and HTTP request messages, and write the response back. Lines may end
 * with CRLF (what the standard and CRM use) or a bare LF (what hand-written clients send).
 */
export interface MimePart {
  /** Header names lower-cased. */
  headers: Map<string, string>;
  body: string;
}

export interface HttpRequestMessage {
  method: string;
  url: string;
  headers: Map<string, string>;
  body: string;
}

export interface HttpResponseMessage {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const CRLF = '\r\n';

/** Media type and parameters of a Content-Type header; parameter names lower-cased, quotes removed. */
export function parseContentType(value: string): { mediaType: string; params: Map<string, string> } {
  const semicolon = value.indexOf(';');
  const mediaType = (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  const params = new Map<string, string>();
  const re = /;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  const rest = semicolon < 0 ? '' : value.slice(semicolon);
  for (let m = re.exec(rest); m; m = re.exec(rest)) {
    const name = (m[1] ?? '').toLowerCase();
    let raw = (m[2] ?? '').trim();
    if (raw.startsWith('"')) raw = raw.slice(1, -1).replace(/\\(.)/g, '$1');
    params.set(name, raw);
  }
  return { mediaType, params };
}

/** The boundary of a multipart/mixed Content-Type, or undefined when it is not one. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const { mediaType, params } = parseContentType(contentType);
  if (mediaType !== 'multipart/mixed') return undefined;
  const boundary = params.get('boundary');
  return boundary && boundary.length <= 70 ? boundary : undefined;
}

function parseHeaderLines(lines: readonly string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw odataError(`The batch part header line '${line.slice(0, 100)}' is not valid.`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** Splits lines into header lines (up to the first empty line) and the rest. */
function splitHead(lines: readonly string[]): { head: string[]; rest: string[] } {
  const blank = lines.indexOf('');
  if (blank < 0) return { head: [...lines], rest: [] };
  return { head: lines.slice(0, blank), rest: lines.slice(blank + 1) };
}

/** Parses a multipart body into its parts (preamble and epilogue ignored). */
export function parseMultipart(body: string, boundary: string): MimePart[] {
  const delimiter = `--${boundary}`;
  const close = `${delimiter}--`;
  const lines = body.split(/\r?\n/);
  const parts: MimePart[] = [];
  let current: string[] | undefined;
  let closed = false;
  for (const raw of lines) {
    const line = raw.replace(/[ \t]+$/, '');
    if (line === close) {
      if (current) parts.push(toPart(current));
      current = undefined;
      closed = true;
      break;
    }
    if (line === delimiter) {
      if (current) parts.push(toPart(current));
      current = [];
      continue;
    }
    current?.push(raw);
  }
  if (!closed) throw odataError(`The multipart body does not end with the boundary '${close}'.`);
  return parts;
}

function toPart(lines: string[]): MimePart {
  const { head, rest } = splitHead(lines);
  return { headers: parseHeaderLines(head), body: rest.join(CRLF) };
}

/** Parses an application/http part body: request line, headers, blank line, body. */
export function parseHttpRequest(text: string): HttpRequestMessage {
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[0] === '') lines.shift();
  const requestLine = lines.shift() ?? '';
  const m = /^([A-Z]+) (\S+)(?: HTTP\/1\.[01])?$/.exec(requestLine.trim());
  if (!m) throw odataError(`The batch part request line '${requestLine.slice(0, 200)}' is not valid.`);
  const { head, rest } = splitHead(lines);
  return { method: m[1] ?? 'GET', url: m[2] ?? '', headers: parseHeaderLines(head), body: rest.join(CRLF).trim() };
}

const reasons: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  412: 'Precondition Failed',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function reasonPhrase(status: number): string {
  return reasons[status] ?? 'Unknown';
}

/** An HTTP response message as written inside a batch response part. */
export function serializeHttpResponse(response: HttpResponseMessage): string {
  const lines = [`HTTP/1.1 ${response.status} ${reasonPhrase(response.status)}`];
  for (const [name, value] of Object.entries(response.headers)) lines.push(`${name}: ${value}`);
  return `${lines.join(CRLF)}${CRLF}${CRLF}${response.body}`;
}

export interface OutgoingPart {
  headers: Record<string, string>;
  body: string;
}

/** Writes parts as a multipart body with CRLF line ends and a closing delimiter. */
export function serializeMultipart(parts: readonly OutgoingPart[], boundary: string): string {
  let out = '';
  for (const part of parts) {
    out += `--${boundary}${CRLF}`;
    for (const [name, value] of Object.entries(part.headers)) out += `${name}: ${value}${CRLF}`;
    out += `${CRLF}${part.body}${CRLF}`;
  }
  return `${out}--${boundary}--${CRLF}`;
}
