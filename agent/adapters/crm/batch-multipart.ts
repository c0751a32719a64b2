import { randomUUID } from 'node:crypto';

/**
 * OData $batch bodies (multipart/mixed), as the Dynamics 365 Web API reads and writes them.
 * A request is either a top-level part (independent; with `Prefer: odata.continue-on-error` the
 * server carries on after a failure) or a member of one change set (all-or-nothing).
 */
export interface BatchRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Path relative to the service root, for example `mailboxes(<guid>)`. */
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface BatchPartResponse {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON body when there is one, else the text (or undefined when empty). */
  body: unknown;
  /** The Content-ID of a change-set part (the 1-based position of its request). */
  contentId?: string;
}

export interface WriteBatchOptions {
  /** Service root, ending with a slash: `<org>/api/data/v9.0/`. Part URLs are absolute, as in Microsoft's examples. */
  serviceRoot: string;
  changeSet?: boolean;
  boundary?: string;
}

export interface WrittenBatch {
  contentType: string;
  body: string;
}

const CRLF = '\r\n';

function writePart(request: BatchRequest, serviceRoot: string, contentId: number | undefined): string {
  const lines = ['Content-Type: application/http', 'Content-Transfer-Encoding: binary'];
  if (contentId !== undefined) lines.push(`Content-ID: ${contentId}`);
  lines.push('', `${request.method} ${serviceRoot}${request.path} HTTP/1.1`);
  const headers: Record<string, string> = { ...request.headers };
  const hasBody = request.body !== undefined;
  if (hasBody) headers['Content-Type'] = 'application/json; type=entry';
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error('batch header contains a line break');
    lines.push(`${name}: ${value}`);
  }
  lines.push('', hasBody ? JSON.stringify(request.body) : '');
  return lines.join(CRLF);
}

export function writeBatch(requests: readonly BatchRequest[], options: WriteBatchOptions): WrittenBatch {
  if (requests.length === 0) throw new Error('a batch needs at least one request');
  if (requests.length > 1000) throw new Error('a batch holds at most 1000 requests');
  for (const r of requests) {
    if (/[\s]/.test(r.path)) throw new Error(`batch path contains white space: ${JSON.stringify(r.path)}`);
  }
  const boundary = options.boundary ?? `batch_${randomUUID()}`;
  let body = '';
  if (options.changeSet) {
    const changeset = `changeset_${randomUUID()}`;
    body += `--${boundary}${CRLF}Content-Type: multipart/mixed; boundary=${changeset}${CRLF}${CRLF}`;
    requests.forEach((request, i) => {
      body += `--${changeset}${CRLF}${writePart(request, options.serviceRoot, i + 1)}${CRLF}`;
    });
    body += `--${changeset}--${CRLF}`;
  } else {
    for (const request of requests) body += `--${boundary}${CRLF}${writePart(request, options.serviceRoot, undefined)}${CRLF}`;
  }
  body += `--${boundary}--${CRLF}`;
  return { contentType: `multipart/mixed; boundary=${boundary}`, body };
}

/** The boundary parameter of a multipart Content-Type, or undefined. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/mixed/i.test(contentType)) return undefined;
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

/** Splits a multipart body into its parts (without the boundary lines); tolerant of LF-only line ends. */
function splitParts(body: string, boundary: string): string[] {
  const delimiter = `--${boundary}`;
  const parts: string[] = [];
  const segments = body.split(delimiter);
  // segments[0] is the preamble; a segment starting with "--" is the close delimiter and what follows is the epilogue.
  for (const segment of segments.slice(1)) {
    if (segment.startsWith('--')) break;
    parts.push(segment.replace(/^[ \t]*\r?\n/, '').replace(/\r?\n$/, ''));
  }
  return parts;
}

/** Splits "headers CRLF CRLF rest" into a header map and the rest. */
function splitHeaders(text: string): { headers: Record<string, string>; rest: string } {
  const match = /\r?\n\r?\n/.exec(text);
  const head = match ? text.slice(0, match.index) : text;
  const rest = match ? text.slice(match.index + match[0].length) : '';
  const headers: Record<string, string> = {};
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, rest };
}

function parseHttpPart(mimeHeaders: Record<string, string>, payload: string): BatchPartResponse {
  const lineEnd = /\r?\n/.exec(payload);
  const statusLine = lineEnd ? payload.slice(0, lineEnd.index) : payload;
  const status = /^HTTP\/\d\.\d\s+(\d{3})/.exec(statusLine.trim());
  if (!status?.[1]) throw new Error(`batch part without an HTTP status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const { headers, rest } = splitHeaders(lineEnd ? payload.slice(lineEnd.index + lineEnd[0].length) : '');
  const text = rest.trim();
  let body: unknown = undefined;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  const response: BatchPartResponse = { status: Number(status[1]), headers, body };
  const contentId = mimeHeaders['content-id'];
  if (contentId !== undefined) response.contentId = contentId;
  return response;
}

/**
 * Parses a $batch response into one entry per answered request, in order. Change-set responses are
 * flattened (their parts carry Content-ID). A server that stops at the first failure answers fewer
 * parts than were sent: the caller sees that from the length.
 */
export function parseBatchResponse(contentType: string | undefined, body: string): BatchPartResponse[] {
  const boundary = boundaryOf(contentType);
  if (!boundary) throw new Error(`a $batch response must be multipart/mixed with a boundary, got ${JSON.stringify(contentType ?? '')}`);
  const out: BatchPartResponse[] = [];
  for (const part of splitParts(body, boundary)) {
    const { headers, rest } = splitHeaders(part);
    const inner = boundaryOf(headers['content-type']);
    if (inner) {
      for (const changePart of splitParts(rest, inner)) {
        const split = splitHeaders(changePart);
        out.push(parseHttpPart(split.headers, split.rest));
      }
    } else {
      out.push(parseHttpPart(headers, rest));
    }
  }
  return out;
}
