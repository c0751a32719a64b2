import { randomUUID } from 'node:crypto';
import { matchApiPath, serviceRootOf } from './api-path.ts';
import {
  commitTransaction,
  errorResponse,
  handleApiRequest,
  newTransaction,
  rollbackTransaction,
  type ApiRequest,
  type ApiResponse,
  type CrmApiContext,
  type Transaction,
} from './crm-api.ts';
import { CrmError, odataError } from './crm-error.ts';
import {
  multipartBoundary,
  parseHttpRequest,
  parseMultipart,
  serializeHttpResponse,
  serializeMultipart,
  type MimePart,
  type OutgoingPart,
} from './multipart.ts';
import { parsePrefer } from './odata-query.ts';

/**
 * `POST $batch` as CRM serves it: multipart/mixed with top-level requests (each answered on its
 * own; without `Prefer: odata.continue-on-error` processing stops at the first failure) and change
 * sets (all-or-nothing: the first failure rolls the others back and is the only answer). At most
 * 1000 requests per batch.
 */
export const MAX_BATCH_REQUESTS = 1000;

export interface BatchContext {
  api: CrmApiContext;
  orgUrl: string;
  orgName: string;
  /** Called once per request part (for the statistics). */
  onPart(method: string): void;
}

interface RequestItem {
  kind: 'request';
  part: MimePart;
}
interface ChangeSetItem {
  kind: 'changeset';
  parts: MimePart[];
}
type BatchItem = RequestItem | ChangeSetItem;

function contentId(part: MimePart, inner?: ReadonlyMap<string, string>): string | undefined {
  return part.headers.get('content-id') ?? inner?.get('content-id');
}

function isHttpPart(part: MimePart): boolean {
  const type = (part.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
  return type === 'application/http';
}

function readItems(body: string, boundary: string): BatchItem[] {
  const items: BatchItem[] = [];
  let count = 0;
  for (const part of parseMultipart(body, boundary)) {
    const inner = multipartBoundary(part.headers.get('content-type'));
    if (inner) {
      const parts = parseMultipart(part.body, inner);
      for (const p of parts) {
        if (!isHttpPart(p)) throw odataError('Every part of a change set must have Content-Type: application/http.');
      }
      count += parts.length;
      items.push({ kind: 'changeset', parts });
    } else if (isHttpPart(part)) {
      count += 1;
      items.push({ kind: 'request', part });
    } else {
      throw odataError(`A batch part has the Content-Type '${part.headers.get('content-type') ?? ''}'; expected application/http or multipart/mixed.`);
    }
  }
  if (count > MAX_BATCH_REQUESTS) {
    throw odataError(`Number of requests exceeded the limit of ${MAX_BATCH_REQUESTS}, actual: ${count}. Please decrease the number of requests and try again.`);
  }
  return items;
}

/** Runs one request part; its answer and its Content-ID. */
function runPart(ctx: BatchContext, part: MimePart, tx: Transaction, inChangeSet: boolean): { response: ApiResponse; id: string | undefined } {
  let id = contentId(part);
  try {
    const message = parseHttpRequest(part.body);
    id = contentId(part, message.headers);
    ctx.onPart(message.method);
    if (inChangeSet && message.method === 'GET') throw odataError('A change set may not contain a GET request.');
    if (message.url.startsWith('$')) throw odataError('Content-ID references ($n) are not supported by the simulator.');
    // Absolute, server-relative (/org/api/data/...) or service-root-relative (mailboxes(...)) URLs.
    const url = new URL(message.url, serviceRootOf(ctx.orgUrl, 'v9.0'));
    const path = matchApiPath(url.pathname, ctx.orgName);
    if (!path) throw new CrmError(404, '0x8006088a', `Resource not found for the segment '${url.pathname}'.`);
    if (path.resource === '$batch') throw odataError('A $batch request may not contain another $batch request.');
    const request: ApiRequest = {
      method: message.method,
      resource: path.resource,
      query: url.searchParams,
      headers: message.headers,
      body: message.body,
      serviceRoot: serviceRootOf(ctx.orgUrl, path.version),
    };
    return { response: handleApiRequest(ctx.api, request, tx), id };
  } catch (error) {
    if (error instanceof CrmError) return { response: errorResponse(error), id };
    throw error;
  }
}

function httpPart(response: ApiResponse, id: string | undefined): OutgoingPart {
  const headers: Record<string, string> = { 'Content-Type': 'application/http', 'Content-Transfer-Encoding': 'binary' };
  if (id !== undefined) headers['Content-ID'] = id;
  return { headers, body: serializeHttpResponse(response) };
}

export function handleBatch(ctx: BatchContext, request: ApiRequest): ApiResponse {
  try {
    if (request.method.toUpperCase() !== 'POST') {
      throw new CrmError(405, '0x80060889', "The HTTP method is not allowed on '$batch': use POST.");
    }
    const boundary = multipartBoundary(request.headers.get('content-type'));
    if (!boundary) throw odataError("The batch request must have a 'Content-Type' header of 'multipart/mixed' with a boundary.");
    const items = readItems(request.body, boundary);
    const continueOnError = parsePrefer(request.headers.get('prefer')).continueOnError;
    const out: OutgoingPart[] = [];
    // The longest hang of the parts that took effect (a `hangMs` fault): the batch answers after it.
    let hangMs: number | undefined;
    const hangOf = (response: ApiResponse): void => {
      if (response.hangMs !== undefined) hangMs = Math.max(hangMs ?? 0, response.hangMs);
    };
    for (const item of items) {
      let failed = false;
      if (item.kind === 'request') {
        const tx = newTransaction();
        const { response, id } = runPart(ctx, item.part, tx, false);
        failed = response.status >= 400;
        if (failed) rollbackTransaction(tx);
        else {
          commitTransaction(tx);
          hangOf(response);
        }
        out.push(httpPart(response, id));
      } else {
        const tx = newTransaction();
        const answers: OutgoingPart[] = [];
        const responses: ApiResponse[] = [];
        for (const part of item.parts) {
          const { response, id } = runPart(ctx, part, tx, true);
          if (response.status >= 400) {
            rollbackTransaction(tx);
            out.push(httpPart(response, id));
            failed = true;
            break;
          }
          answers.push(httpPart(response, id));
          responses.push(response);
        }
        if (!failed) {
          commitTransaction(tx);
          responses.forEach(hangOf);
          const inner = `changesetresponse_${randomUUID()}`;
          out.push({ headers: { 'Content-Type': `multipart/mixed; boundary=${inner}` }, body: serializeMultipart(answers, inner).replace(/\r\n$/, '') });
        }
      }
      if (failed && !continueOnError) break;
    }
    const responseBoundary = `batchresponse_${randomUUID()}`;
    const headers: Record<string, string> = {
      'OData-Version': '4.0',
      'Content-Type': `multipart/mixed; boundary=${responseBoundary}`,
    };
    if (continueOnError) headers['Preference-Applied'] = 'odata.continue-on-error';
    const response: ApiResponse = { status: 200, headers, body: serializeMultipart(out, responseBoundary) };
    return hangMs === undefined ? response : { ...response, hangMs };
  } catch (error) {
    if (error instanceof CrmError) return errorResponse(error);
    throw error;
  }
}
