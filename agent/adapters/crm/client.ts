import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import type { Logger } from '../../../core/logger.ts';
import { silentLogger } from '../../../core/logger.ts';
import { SetupError, isSetupError } from '../../../core/setup-error.ts';
import { odataGuid } from '../../../jobs/mailbox-filter.ts';
import type { AgentConfig } from '../../runtime/config.ts';
import { parseBatchResponse, writeBatch, type BatchPartResponse, type BatchRequest } from './batch-multipart.ts';
import { crmHttpError } from './error.ts';
import { PlainTransport, header, type HttpResponse, type HttpTransport } from './http-transport.ts';
import { NtlmTransport } from './ntlm-transport.ts';
import { assertSetName, buildQuery } from './odata-query.ts';
import { backoffDelay, defaultRetryDelays, isRetryableStatus, isTransientNetworkError } from '../retry-policy.ts';

/** Web API version the client speaks (on-premises 9.0 and 9.1 both serve v9.0). */
export const API_PATH = 'api/data/v9.0/';

export const whoAmISchema = z.object({
  UserId: z.string(),
  BusinessUnitId: z.string(),
  OrganizationId: z.string(),
}).passthrough();
export type WhoAmI = z.infer<typeof whoAmISchema>;

const pageSchema = z.object({
  value: z.array(z.unknown()),
  '@odata.nextLink': z.string().optional(),
}).passthrough();

export interface GetAllOptions<T> {
  select: readonly string[];
  filter?: string;
  /** Each row is parsed with this (rows that do not fit are a CRM_RESPONSE_INVALID error). */
  schema: z.ZodType<T, z.ZodTypeDef, unknown>;
  pageSize?: number;
  /** $orderby (attribute names and asc/desc only, never input). */
  orderby?: string;
  /** $top: at most this many rows (CRM then answers in one page). */
  top?: number;
  /** Rows related to one record instead of the set: `<set>(<id>)/<navigation>` (a collection-valued navigation property). */
  related?: { id: string; navigation: string };
}

export interface BatchOptions {
  /** Top-level parts with `Prefer: odata.continue-on-error`: a failing part does not stop the others. */
  continueOnError?: boolean;
  /** Put every request in one change set (all-or-nothing). */
  changeSet?: boolean;
}

export interface BatchResult {
  /** One per answered request, in order. Fewer than sent if the server stopped at a failure. */
  responses: BatchPartResponse[];
  /** CRM's clock when it answered (the `Date` header), if it sent one. */
  date: Date | undefined;
}

/** What the job handlers need from CRM. */
export interface CrmApi {
  whoAmI(): Promise<WhoAmI>;
  /** CRM's clock: the `Date` header of a `WhoAmI` answer (undefined if the server sent none). */
  serverDate(): Promise<Date | undefined>;
  getAll<T>(set: string, options: GetAllOptions<T>): AsyncIterable<T[]>;
  patch(set: string, id: string, body: Record<string, unknown>): Promise<{ date: Date | undefined }>;
  /**
   * POST a new row; the id comes from the `OData-EntityId` header. Not retried by the client (a
   * create that timed out may have happened): the caller looks again before creating again.
   */
  create(set: string, body: Record<string, unknown>): Promise<{ id: string; date: Date | undefined }>;
  batch(requests: readonly BatchRequest[], options?: BatchOptions): Promise<BatchResult>;
  /** HTTP requests this client (or scope) has put on the wire, handshakes and retries included. */
  readonly requestCount: number;
  /** A view sharing the connections, with its own request counter (one per job). */
  scope(): CrmApi;
  close(): void;
}

export interface CrmClientOptions {
  /** Organization URL, for example https://crm.contoso.local/contoso. */
  orgUrl: string;
  auth: { kind: 'none' } | { kind: 'ntlm'; username: string; password: string; domain: string };
  pageSize: number;
  timeoutMs: number;
  maxRetries: number;
  /** Connections (NTLM: authenticated connection slots) shared by all jobs. */
  maxSockets: number;
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  logger?: Logger;
  transport?: HttpTransport;
}

class RequestCounter {
  count = 0;
  constructor(private readonly parent?: RequestCounter) {}
  add(): void {
    this.count += 1;
    this.parent?.add();
  }
}

interface Shared {
  serviceRoot: URL;
  transport: HttpTransport;
  pageSize: number;
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
  logger: Logger;
}

const baseHeaders: Readonly<Record<string, string>> = {
  'OData-Version': '4.0',
  'OData-MaxVersion': '4.0',
  Accept: 'application/json',
};

/** The Dynamics 365 Web API over HTTP: paging, PATCH, $batch, retries with backoff, request counting. */
export class CrmClient implements CrmApi {
  readonly #shared: Shared;
  readonly #counter: RequestCounter;

  private constructor(shared: Shared, counter: RequestCounter) {
    this.#shared = shared;
    this.#counter = counter;
  }

  static create(options: CrmClientOptions): CrmClient {
    const serviceRoot = new URL(`${options.orgUrl.replace(/\/+$/, '')}/${API_PATH}`);
    const transport =
      options.transport ??
      (options.auth.kind === 'ntlm'
        ? new NtlmTransport({ baseUrl: serviceRoot, slots: options.maxSockets, timeoutMs: options.timeoutMs, credentials: options.auth })
        : new PlainTransport({ baseUrl: serviceRoot, maxSockets: options.maxSockets, timeoutMs: options.timeoutMs }));
    return new CrmClient(
      {
        serviceRoot,
        transport,
        pageSize: options.pageSize,
        maxRetries: options.maxRetries,
        baseDelayMs: options.retryBaseDelayMs ?? defaultRetryDelays.baseDelayMs,
        maxDelayMs: options.retryMaxDelayMs ?? defaultRetryDelays.maxDelayMs,
        sleep: options.sleep ?? ((ms) => delay(ms)),
        random: options.random ?? Math.random,
        logger: options.logger ?? silentLogger(),
      },
      new RequestCounter(),
    );
  }

  get serviceRoot(): string {
    return this.#shared.serviceRoot.toString();
  }

  get requestCount(): number {
    return this.#counter.count;
  }

  scope(): CrmClient {
    return new CrmClient(this.#shared, new RequestCounter(this.#counter));
  }

  close(): void {
    this.#shared.transport.close();
  }

  async whoAmI(): Promise<WhoAmI> {
    const response = await this.#send('GET', this.#url('WhoAmI'), 'WhoAmI');
    return parseJson(response, whoAmISchema, 'WhoAmI');
  }

  async serverDate(): Promise<Date | undefined> {
    const response = await this.#send('GET', this.#url('WhoAmI'), 'WhoAmI');
    return dateHeader(response);
  }

  async *getAll<T>(set: string, options: GetAllOptions<T>): AsyncGenerator<T[], void, undefined> {
    const query = buildQuery({
      select: options.select,
      ...(options.filter === undefined ? {} : { filter: options.filter }),
      ...(options.orderby === undefined ? {} : { orderby: options.orderby }),
      ...(options.top === undefined ? {} : { top: options.top }),
    });
    const related = options.related ? `(${odataGuid(options.related.id)})/${assertSetName(options.related.navigation)}` : '';
    let url: URL | undefined = this.#url(`${assertSetName(set)}${related}?${query}`);
    const prefer = `odata.maxpagesize=${options.pageSize ?? this.#shared.pageSize}`;
    while (url) {
      const response = await this.#send('GET', url, `GET ${set}`, { headers: { Prefer: prefer } });
      const page = parseJson(response, pageSchema, `GET ${set}`);
      const rows: T[] = [];
      for (const raw of page.value) {
        const row = options.schema.safeParse(raw);
        if (!row.success) {
          throw new SetupError('CRM_RESPONSE_INVALID', `CRM returned a ${set} row this agent cannot read: ${row.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
        }
        rows.push(row.data);
      }
      yield rows;
      url = page['@odata.nextLink'] === undefined ? undefined : this.#nextLink(page['@odata.nextLink']);
    }
  }

  async patch(set: string, id: string, body: Record<string, unknown>): Promise<{ date: Date | undefined }> {
    const response = await this.#send('PATCH', this.#url(`${assertSetName(set)}(${odataGuid(id)})`), `PATCH ${set}`, {
      headers: { 'Content-Type': 'application/json', 'If-Match': '*' },
      body: Buffer.from(JSON.stringify(body), 'utf8'),
    });
    return { date: dateHeader(response) };
  }

  async create(set: string, body: Record<string, unknown>): Promise<{ id: string; date: Date | undefined }> {
    const response = await this.#send('POST', this.#url(assertSetName(set)), `POST ${set}`, {
      headers: { 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify(body), 'utf8'),
      retry: false,
    });
    const id = entityIdOf(header(response, 'odata-entityid'), set);
    if (!id) {
      throw new SetupError('CRM_RESPONSE_INVALID', `CRM created a ${set} row but its answer has no OData-EntityId header naming the new row (HTTP ${response.status}).`, {
        hint: 'Look for the new row in CRM before trying again, so it is not created twice.',
      });
    }
    return { id, date: dateHeader(response) };
  }

  async batch(requests: readonly BatchRequest[], options: BatchOptions = {}): Promise<BatchResult> {
    const written = writeBatch(requests, { serviceRoot: this.serviceRoot, changeSet: options.changeSet ?? false });
    const headers: Record<string, string> = { 'Content-Type': written.contentType };
    if (options.continueOnError) headers.Prefer = 'odata.continue-on-error';
    const response = await this.#send('POST', this.#url('$batch'), `$batch of ${requests.length}`, {
      headers,
      body: Buffer.from(written.body, 'utf8'),
    });
    let responses: BatchPartResponse[];
    try {
      responses = parseBatchResponse(header(response, 'content-type'), response.body.toString('utf8'));
    } catch (cause) {
      throw new SetupError('CRM_RESPONSE_INVALID', `CRM's $batch response cannot be read: ${(cause as Error).message}`, { cause, retryable: true });
    }
    return { responses, date: dateHeader(response) };
  }

  #url(relative: string): URL {
    return new URL(relative, this.#shared.serviceRoot);
  }

  /** Follows a nextLink only within the same service root: credentials never go to another host. */
  #nextLink(link: string): URL {
    const url = new URL(link, this.#shared.serviceRoot);
    const root = this.#shared.serviceRoot;
    if (url.origin !== root.origin || !url.pathname.toLowerCase().startsWith(root.pathname.toLowerCase())) {
      throw new SetupError('CRM_RESPONSE_INVALID', 'CRM returned a next-page link outside its own Web API; the agent does not follow it.');
    }
    return url;
  }

  async #send(method: string, url: URL, what: string, extra: { headers?: Record<string, string>; body?: Buffer; retry?: boolean } = {}): Promise<HttpResponse> {
    const { transport, logger } = this.#shared;
    const maxRetries = extra.retry === false ? 0 : this.#shared.maxRetries;
    const request = { method, url, headers: { ...baseHeaders, ...extra.headers }, ...(extra.body ? { body: extra.body } : {}) };
    for (let attempt = 0; ; attempt += 1) {
      let response: HttpResponse;
      try {
        response = await transport.send(request, () => this.#counter.add());
      } catch (error) {
        if (isSetupError(error)) throw error;
        const transient = isTransientNetworkError(error);
        if (transient && attempt < maxRetries) {
          await this.#wait(attempt, what, (error as Error).message, undefined);
          continue;
        }
        throw new SetupError('CRM_UNREACHABLE', `Cannot reach CRM at ${url.origin} for ${what}: ${(error as Error).message}`, {
          retryable: transient,
          hint: 'Check CRM_URL, that the CRM web site is running, and that this machine can reach it.',
          cause: error,
          details: { attempts: attempt + 1 },
        });
      }
      if (isRetryableStatus(response.status) && attempt < maxRetries) {
        await this.#wait(attempt, what, `HTTP ${response.status}`, header(response, 'retry-after'));
        continue;
      }
      if (response.status >= 400) {
        logger.debug({ status: response.status, what, attempts: attempt + 1 }, 'CRM request failed');
        throw crmHttpError(what, response.status, response.body.toString('utf8'), isRetryableStatus(response.status));
      }
      return response;
    }
  }

  async #wait(attempt: number, what: string, reason: string, retryAfter: string | undefined): Promise<void> {
    const { baseDelayMs, maxDelayMs, random, sleep, logger } = this.#shared;
    let ms = backoffDelay(attempt, { baseDelayMs, maxDelayMs }, random);
    const seconds = retryAfter === undefined ? NaN : Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) ms = Math.min(maxDelayMs, Math.max(ms, seconds * 1000));
    logger.warn({ what, reason, attempt: attempt + 1, delayMs: ms }, 'CRM request failed, retrying');
    await sleep(ms);
  }
}

/** Builds the client from the agent's configuration. */
export function createCrmClient(config: AgentConfig, options: Partial<Pick<CrmClientOptions, 'logger' | 'sleep' | 'random' | 'transport' | 'retryBaseDelayMs' | 'retryMaxDelayMs'>> = {}): CrmClient {
  const auth: CrmClientOptions['auth'] =
    config.CRM_AUTH === 'ntlm'
      ? { kind: 'ntlm', username: config.CRM_USERNAME ?? '', password: config.CRM_PASSWORD ?? '', domain: config.CRM_DOMAIN ?? '' }
      : { kind: 'none' };
  return CrmClient.create({
    orgUrl: config.CRM_URL,
    auth,
    pageSize: config.CRM_PAGE_SIZE,
    timeoutMs: config.CRM_TIMEOUT_MS,
    maxRetries: config.CRM_MAX_RETRIES,
    maxSockets: config.CRM_CONCURRENCY * config.AGENT_CONCURRENCY,
    ...options,
  });
}

/** The id in an `OData-EntityId` header (`<service root><set>(<guid>)`), when it names a row of `set`. */
export function entityIdOf(value: string | undefined, set: string): string | undefined {
  if (!value) return undefined;
  const m = /\/([A-Za-z_][A-Za-z0-9_]*)\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)$/.exec(value.trim());
  if (!m || m[1] !== set || m[2] === undefined) return undefined;
  return m[2].toLowerCase();
}

function dateHeader(response: HttpResponse): Date | undefined {
  const value = header(response, 'date');
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function parseJson<T>(response: HttpResponse, schema: z.ZodType<T, z.ZodTypeDef, unknown>, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(response.body.toString('utf8').replace(/^\uFEFF/, ''));
  } catch {
    throw new SetupError('CRM_RESPONSE_INVALID', `CRM's answer to ${what} is not JSON (HTTP ${response.status}).`, {
      hint: 'Check that CRM_URL is the organization URL (the agent adds /api/data/v9.0/).',
    });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new SetupError('CRM_RESPONSE_INVALID', `CRM's answer to ${what} has an unexpected shape: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
