import type { BatchPartResponse, BatchRequest } from '../../../agent/batch-multipart.ts';
import type { BatchOptions, BatchResult, CrmApi, GetAllOptions, WhoAmI } from '../../../agent/crm-client.ts';

/**
 * An in-memory CrmApi for handler tests. It understands only the queries the handlers send
 * (checked by the tests through `queries`), and lets a test script each GET and batch.
 */
export interface FakeCrmScript {
  get: (set: string, options: { select: readonly string[]; filter?: string }) => unknown[][];
  batchPart?: (request: BatchRequest) => BatchPartResponse;
  date?: () => Date | undefined;
}

export class FakeCrm implements CrmApi {
  requestCount = 0;
  readonly queries: { set: string; select: readonly string[]; filter?: string }[] = [];
  readonly batches: BatchRequest[][] = [];
  constructor(private readonly script: FakeCrmScript) {}

  whoAmI(): Promise<WhoAmI> {
    this.requestCount += 1;
    return Promise.resolve({ UserId: '11111111-2222-3333-4444-555555555555', BusinessUnitId: 'b', OrganizationId: 'o' });
  }

  async *getAll<T>(set: string, options: GetAllOptions<T>): AsyncIterable<T[]> {
    const query = { set, select: options.select, ...(options.filter === undefined ? {} : { filter: options.filter }) };
    this.queries.push(query);
    for (const page of this.script.get(set, query)) {
      this.requestCount += 1;
      await Promise.resolve();
      yield page.map((row) => options.schema.parse(row));
    }
  }

  patch(): Promise<{ date: Date | undefined }> {
    this.requestCount += 1;
    return Promise.resolve({ date: this.script.date?.() });
  }

  batch(requests: readonly BatchRequest[], _options?: BatchOptions): Promise<BatchResult> {
    this.requestCount += 1;
    this.batches.push([...requests]);
    const part = this.script.batchPart ?? (() => ({ status: 204, headers: {}, body: undefined }));
    return Promise.resolve({ responses: requests.map(part), date: this.script.date?.() });
  }

  scope(): CrmApi {
    return this;
  }

  close(): void {}
}
