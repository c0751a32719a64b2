import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CrmClient } from '../../../../agent/adapters/crm/client.ts';
import { backoffDelay, isRetryableStatus, isTransientNetworkError } from '../../../../agent/adapters/retry-policy.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import { toODataFilter } from '../../../../jobs/mailbox-filter.ts';
import { sendJson, startLocalServer, type Handler, type LocalServer } from '../../support/local-server.ts';

let server: LocalServer | undefined;
let client: CrmClient | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await server?.close();
  server = undefined;
});

const sleeps: number[] = [];
async function setup(handler: Handler, options: { maxRetries?: number; timeoutMs?: number; pageSize?: number } = {}): Promise<{ server: LocalServer; client: CrmClient }> {
  server = await startLocalServer(handler);
  sleeps.length = 0;
  client = CrmClient.create({
    orgUrl: `${server.origin}/contoso/`,
    auth: { kind: 'none' },
    pageSize: options.pageSize ?? 2,
    timeoutMs: options.timeoutMs ?? 2_000,
    maxRetries: options.maxRetries ?? 3,
    maxSockets: 2,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    random: () => 0.5,
  });
  return { server, client };
}

const rowSchema = z.object({ mailboxid: z.string(), emailaddress: z.string() });

describe('retry policy', () => {
  it('retries 5xx and connection errors, never 4xx', () => {
    expect([500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 412, 429].some(isRetryableStatus)).toBe(false);
    expect(isTransientNetworkError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransientNetworkError(new Error('socket hang up'))).toBe(true);
    expect(isTransientNetworkError(Object.assign(new Error('x'), { code: 'CERT_HAS_EXPIRED' }))).toBe(false);
  });

  it('backs off exponentially with jitter and a ceiling', () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 1_000 };
    expect(backoffDelay(0, policy, () => 0)).toBe(50);
    expect(backoffDelay(0, policy, () => 1)).toBe(100);
    expect(backoffDelay(3, policy, () => 1)).toBe(800);
    expect(backoffDelay(10, policy, () => 1)).toBe(1_000);
    for (let a = 0; a < 8; a++) {
      const d = backoffDelay(a, policy);
      expect(d).toBeGreaterThanOrEqual(Math.min(1_000, 100 * 2 ** a) / 2);
      expect(d).toBeLessThanOrEqual(Math.min(1_000, 100 * 2 ** a));
    }
  });
});

describe('CrmClient', () => {
  it('sends the OData headers and pages through @odata.nextLink with odata.maxpagesize', async () => {
    const { server, client } = await setup((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.searchParams.get('page') === '2') {
        sendJson(res, 200, { value: [{ mailboxid: 'c', emailaddress: 'c@contoso.com' }] });
        return;
      }
      sendJson(res, 200, {
        value: [
          { mailboxid: 'a', emailaddress: 'a@contoso.com', '@odata.etag': 'W/"1"' },
          { mailboxid: 'b', emailaddress: 'b@contoso.com' },
        ],
        '@odata.nextLink': `${server?.origin ?? ''}/contoso/api/data/v9.0/mailboxes?page=2`,
      });
    });
    const filter = toODataFilter({ kind: 'addresses', addresses: ["o'brien@contoso.com"] });
    const pages: string[][] = [];
    for await (const page of client.getAll('mailboxes', { select: ['mailboxid', 'emailaddress'], filter, schema: rowSchema })) {
      pages.push(page.map((r) => r.mailboxid));
    }
    expect(pages).toEqual([['a', 'b'], ['c']]);
    expect(server.requests).toHaveLength(2);
    const first = server.requests[0];
    expect(first?.url.startsWith('/contoso/api/data/v9.0/mailboxes?$select=mailboxid,emailaddress&$filter=statecode%20eq%200%20and%20')).toBe(true);
    expect(first?.url).not.toContain('+');
    expect(new URL(first?.url ?? '', 'http://x').searchParams.get('$filter')).toBe(filter);
    expect(first?.headers['odata-version']).toBe('4.0');
    expect(first?.headers['odata-maxversion']).toBe('4.0');
    expect(first?.headers.accept).toBe('application/json');
    expect(first?.headers.prefer).toBe('odata.maxpagesize=2');
    expect(client.requestCount).toBe(2);
  });

  it('does not follow a nextLink to another host', async () => {
    const { client } = await setup((_req, res) => sendJson(res, 200, { value: [], '@odata.nextLink': 'http://evil.example/api/data/v9.0/mailboxes' }));
    const run = async () => {
      for await (const _page of client.getAll('mailboxes', { select: ['mailboxid'], schema: z.object({}) })) {
        // first page is fine
      }
    };
    await expect(run()).rejects.toMatchObject({ code: 'CRM_RESPONSE_INVALID' });
  });

  it('retries 503 with backoff and then succeeds, counting every request', async () => {
    let calls = 0;
    const { client, server } = await setup((_req, res) => {
      calls += 1;
      if (calls <= 2) sendJson(res, 503, { error: { code: '0x80044150', message: 'busy' } });
      else sendJson(res, 200, { UserId: 'u', BusinessUnitId: 'b', OrganizationId: 'o' });
    });
    const me = await client.whoAmI();
    expect(me.UserId).toBe('u');
    expect(server.requests).toHaveLength(3);
    expect(client.requestCount).toBe(3);
    expect(sleeps).toEqual([375, 750]);
  });

  it("reads CRM's clock from the Date header of a WhoAmI answer", async () => {
    const { client, server } = await setup((_req, res) =>
      sendJson(res, 200, { UserId: 'u', BusinessUnitId: 'b', OrganizationId: 'o' }, { Date: 'Tue, 01 Jul 2025 10:00:05 GMT' }),
    );
    expect((await client.serverDate())?.toISOString()).toBe('2025-07-01T10:00:05.000Z');
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /contoso/api/data/v9.0/WhoAmI']);
  });

  it('gives up after CRM_MAX_RETRIES on 5xx with a retryable CRM_REQUEST_FAILED', async () => {
    const { client, server } = await setup((_req, res) => sendJson(res, 500, { error: { code: '0x80040216', message: 'SQL timeout' } }), { maxRetries: 2 });
    const error = await client.whoAmI().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SetupError);
    expect(error).toMatchObject({ code: 'CRM_REQUEST_FAILED', retryable: true });
    expect((error as Error).message).toContain('0x80040216');
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry a 4xx and reports CRM error code and message', async () => {
    const { client, server } = await setup((_req, res) => sendJson(res, 404, { error: { code: '0x80040217', message: 'mailbox With Id = x Does Not Exist' } }));
    const error = await client.patch('mailboxes', '00000000-0000-0000-0000-0000000000aa', { emailrouteraccessapproval: 1 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CRM_REQUEST_FAILED', retryable: false });
    expect((error as Error).message).toMatch(/404 0x80040217.*Does Not Exist/);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.method).toBe('PATCH');
    expect(server.requests[0]?.url).toBe('/contoso/api/data/v9.0/mailboxes(00000000-0000-0000-0000-0000000000aa)');
    expect(server.requests[0]?.headers['if-match']).toBe('*');
    expect(server.requests[0]?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(server.requests[0]?.body ?? '')).toEqual({ emailrouteraccessapproval: 1 });
  });

  it('maps 401 to CRM_AUTH_FAILED with a hint', async () => {
    const { client } = await setup((_req, res) => sendJson(res, 401, {}));
    await expect(client.whoAmI()).rejects.toMatchObject({ code: 'CRM_AUTH_FAILED', hint: expect.stringContaining('CRM_USERNAME') as unknown });
  });

  it('retries a time-out, then reports CRM_UNREACHABLE as retryable', async () => {
    const { client, server } = await setup(() => undefined /* never answers */, { timeoutMs: 150, maxRetries: 1 });
    const error = await client.whoAmI().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CRM_UNREACHABLE', retryable: true });
    expect(server.requests).toHaveLength(2);
  });

  it('refuses a PATCH id that is not a GUID (no query text from raw input)', async () => {
    const { client, server } = await setup((_req, res) => sendJson(res, 204, {}));
    await expect(client.patch('mailboxes', "x') or (1 eq 1", {})).rejects.toThrow(/not a GUID/);
    expect(server.requests).toHaveLength(0);
  });

  it('posts $batch as multipart/mixed with continue-on-error and returns per-part responses and the Date header', async () => {
    const { client, server } = await setup((req, res) => {
      const boundary = 'batchresponse_9';
      const parts = (req.body.match(/^PATCH /gm) ?? []).map((_, i) =>
        i === 1
          ? `--${boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{"error":{"code":"0x80040220","message":"no privilege"}}\r\n`
          : `--${boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n`,
      );
      res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${boundary}`, Date: 'Tue, 01 Jul 2025 10:00:05 GMT' });
      res.end(`${parts.join('')}--${boundary}--\r\n`);
    });
    const ids = ['1', '2', '3'].map((n) => `00000000-0000-0000-0000-00000000000${n}`);
    const result = await client.batch(
      ids.map((id) => ({ method: 'PATCH' as const, path: `mailboxes(${id})`, headers: { 'If-Match': '*' }, body: { emailrouteraccessapproval: 1 } })),
      { continueOnError: true },
    );
    expect(result.responses.map((r) => r.status)).toEqual([204, 403, 204]);
    expect(result.date?.toISOString()).toBe('2025-07-01T10:00:05.000Z');
    const req = server.requests[0];
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe('/contoso/api/data/v9.0/$batch');
    expect(req?.headers['content-type']).toMatch(/^multipart\/mixed; boundary=batch_/);
    expect(req?.headers.prefer).toBe('odata.continue-on-error');
    expect(req?.body).toContain(`PATCH ${server.origin}/contoso/api/data/v9.0/mailboxes(${ids[2] ?? ''}) HTTP/1.1`);
  });

  it('creates a row with POST and returns the id from OData-EntityId and the Date header', async () => {
    const id = '0A1B2C3D-0000-4000-8000-00000000abcd';
    const { client, server } = await setup((req, res) => {
      res.writeHead(204, { 'OData-EntityId': `${server.origin}/contoso/api/data/v9.0/emailserverprofiles(${id})`, Date: 'Tue, 01 Jul 2025 10:00:05 GMT' });
      res.end();
      expect(req.method).toBe('POST');
    });
    const created = await client.create('emailserverprofiles', { name: "O'Brien profile", servertype: 3 });
    expect(created).toEqual({ id: id.toLowerCase(), date: new Date('2025-07-01T10:00:05Z') });
    const req = server.requests[0];
    expect(req?.url).toBe('/contoso/api/data/v9.0/emailserverprofiles');
    expect(req?.headers['content-type']).toBe('application/json');
    expect(req?.headers['if-match']).toBeUndefined();
    expect(JSON.parse(req?.body ?? '')).toEqual({ name: "O'Brien profile", servertype: 3 });
  });

  it('does not retry a failed create (it may have happened) and refuses an answer without the new id', async () => {
    const { client, server } = await setup((_req, res) => sendJson(res, 503, { error: { code: '0x80044150', message: 'busy' } }), { maxRetries: 3 });
    await expect(client.create('emailserverprofiles', { name: 'x' })).rejects.toMatchObject({ code: 'CRM_REQUEST_FAILED', retryable: true });
    expect(server.requests).toHaveLength(1);
    expect(sleeps).toEqual([]);
    await server.close();

    const other = await setup((_req, res) => {
      res.writeHead(204, { 'OData-EntityId': `${other.server.origin}/contoso/api/data/v9.0/mailboxes(00000000-0000-0000-0000-000000000001)` });
      res.end();
    });
    await expect(other.client.create('emailserverprofiles', { name: 'x' })).rejects.toMatchObject({ code: 'CRM_RESPONSE_INVALID' });
    await expect(other.client.create('emailserverprofiles?x=1', { name: 'x' })).rejects.toThrow(/not an entity set name/);
    expect(other.server.requests).toHaveLength(1);
    client.close();
  });

  it('reuses kept-alive connections', async () => {
    const { client, server } = await setup((_req, res) => sendJson(res, 200, { UserId: 'u', BusinessUnitId: 'b', OrganizationId: 'o' }));
    for (let i = 0; i < 5; i++) await client.whoAmI();
    expect(new Set(server.requests.map((r) => r.socketId)).size).toBe(1);
  });

  it('counts requests per scope and in the parent', async () => {
    const { client } = await setup((_req, res) => sendJson(res, 200, { UserId: 'u', BusinessUnitId: 'b', OrganizationId: 'o' }));
    const a = client.scope();
    const b = client.scope();
    await a.whoAmI();
    await a.whoAmI();
    await b.whoAmI();
    expect([a.requestCount, b.requestCount, client.requestCount]).toEqual([2, 1, 3]);
  });
});
