import type { BatchPartResponse, BatchRequest } from '../../../agent/adapters/crm/batch-multipart.ts';
import type { BatchOptions, BatchResult, CrmApi, GetAllOptions, WhoAmI } from '../../../agent/adapters/crm/client.ts';

/**
 * An in-memory CrmApi for handler tests. It understands only the queries the handlers send
 * (checked by the tests through `queries`), and lets a test script each GET and batch.
 */
export interface FakeCrmScript {
  get: (set: string, options: { select: readonly string[]; filter?: string }) => unknown[][];
  batchPart?: (request: BatchRequest) => BatchPartResponse;
  /** Cut the answer short (a server that stops at the first failure). */
  truncate?: (responses: BatchPartResponse[]) => BatchPartResponse[];
  date?: () => Date | undefined;
  batchDelayMs?: number;
  /** The id a POST returns (default: a fixed GUID). */
  create?: (set: string, body: Record<string, unknown>) => string;
}

export class FakeCrm implements CrmApi {
  requestCount = 0;
  readonly queries: { set: string; select: readonly string[]; filter?: string }[] = [];
  readonly batches: BatchRequest[][] = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor(private readonly script: FakeCrmScript) {}

  /** The order of requests: 'whoami', 'date', 'get <set>', 'batch'. */
  readonly log: string[] = [];

  serverDate(): Promise<Date | undefined> {
    this.requestCount += 1;
    this.log.push('date');
    return Promise.resolve(this.script.date?.());
  }

  whoAmI(): Promise<WhoAmI> {
    this.log.push('whoami');
    this.requestCount += 1;
    return Promise.resolve({ UserId: '11111111-2222-3333-4444-555555555555', BusinessUnitId: 'b', OrganizationId: 'o' });
  }

  async *getAll<T>(set: string, options: GetAllOptions<T>): AsyncIterable<T[]> {
    const query = { set, select: options.select, ...(options.filter === undefined ? {} : { filter: options.filter }) };
    this.queries.push(query);
    for (const page of this.script.get(set, query)) {
      this.requestCount += 1;
      this.log.push(`get ${set}`);
      await Promise.resolve();
      yield page.map((row) => options.schema.parse(row));
    }
  }

  patch(): Promise<{ date: Date | undefined }> {
    this.requestCount += 1;
    return Promise.resolve({ date: this.script.date?.() });
  }

  readonly creates: { set: string; body: Record<string, unknown> }[] = [];

  create(set: string, body: Record<string, unknown>): Promise<{ id: string; date: Date | undefined }> {
    this.requestCount += 1;
    this.log.push(`create ${set}`);
    this.creates.push({ set, body });
    return Promise.resolve({ id: this.script.create?.(set, body) ?? '99999999-0000-0000-0000-000000000001', date: this.script.date?.() });
  }

  async batch(requests: readonly BatchRequest[], _options?: BatchOptions): Promise<BatchResult> {
    this.requestCount += 1;
    this.batches.push([...requests]);
    this.log.push('batch');
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((resolve) => setTimeout(resolve, this.script.batchDelayMs ?? 0));
    this.inFlight -= 1;
    const part = this.script.batchPart ?? (() => ({ status: 204, headers: {}, body: undefined }));
    let responses = requests.map(part);
    if (this.script.truncate) responses = this.script.truncate(responses);
    return { responses, date: this.script.date?.() };
  }

  scope(): CrmApi {
    return this;
  }

  close(): void {}
}
