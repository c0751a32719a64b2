import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { multipartBoundary, parseMultipart } from '../../sim/multipart.ts';
import { mailboxesInCategory, mailboxesWithoutApprovePrivilege, type MailboxRecord } from '../../sim/sim-state.ts';
import { errorOf, simClient, type SimClient, type SimResponse } from './sim-client.ts';

const CRLF = '\r\n';

interface PartSpec {
  method: string;
  url: string;
  body?: unknown;
  contentId?: string;
  headers?: Record<string, string>;
}

/** Written by hand (not with sim/multipart.ts) so the parser is tested against an independent writer. */
function httpPart(part: PartSpec): string {
  const lines = ['Content-Type: application/http', 'Content-Transfer-Encoding: binary'];
  if (part.contentId) lines.push(`Content-ID: ${part.contentId}`);
  lines.push('', `${part.method} ${part.url} HTTP/1.1`);
  if (part.body !== undefined) lines.push('Content-Type: application/json;type=entry');
  for (const [name, value] of Object.entries(part.headers ?? {})) lines.push(`${name}: ${value}`);
  lines.push('', part.body === undefined ? '' : JSON.stringify(part.body));
  return lines.join(CRLF);
}

type Item = PartSpec | { changeset: PartSpec[] };

function batchBody(items: Item[], boundary: string): string {
  let out = '';
  let n = 0;
  for (const item of items) {
    out += `--${boundary}${CRLF}`;
    if ('changeset' in item) {
      const cs = `changeset_${++n}`;
      out += `Content-Type: multipart/mixed; boundary=${cs}${CRLF}${CRLF}`;
      for (const part of item.changeset) out += `--${cs}${CRLF}${httpPart(part)}${CRLF}`;
      out += `--${cs}--${CRLF}`;
    } else {
      out += `${httpPart(item)}${CRLF}`;
    }
  }
  return `${out}--${boundary}--${CRLF}`;
}

interface PartResult {
  status: number;
  contentId: string | undefined;
  body: string;
  changeset?: PartResult[];
}

function parseResponseParts(body: string, boundary: string): PartResult[] {
  return parseMultipart(body, boundary).map((part) => {
    const inner = multipartBoundary(part.headers.get('content-type'));
    if (inner) return { status: 0, contentId: undefined, body: '', changeset: parseResponseParts(part.body, inner) };
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(part.body);
    if (!m) throw new Error(`bad response part: ${part.body}`);
    return { status: Number(m[1]), contentId: part.headers.get('content-id'), body: m[3] ?? '' };
  });
}

describe('simulated Web API: $batch', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  let pending: MailboxRecord[];
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 400, seed: 5, testDelayMs: 60_000 });
    crm = simClient(sim);
    pending = mailboxesInCategory(sim.state, 'pending').filter((m) => sim.state.principals.get(m._ownerid_value)?.hasApprovePrivilege);
  });
  afterAll(async () => {
    await sim.close();
  });

  const take = (count: number): MailboxRecord[] => {
    const out = pending.splice(0, count);
    if (out.length < count) throw new Error('ran out of seeded pending mailboxes');
    return out;
  };

  async function batch(items: Item[], headers: Record<string, string> = {}, boundary = 'batch_AbC-123'): Promise<SimResponse & { parts: PartResult[] }> {
    const response = await crm.send('POST', '$batch', batchBody(items, boundary), {
      'Content-Type': `multipart/mixed; boundary="${boundary}"`,
      ...headers,
    });
    const responseBoundary = multipartBoundary(response.headers.get('content-type') ?? '');
    return { ...response, parts: responseBoundary ? parseResponseParts(response.text, responseBoundary) : [] };
  }

  const approve = (m: MailboxRecord, url = `mailboxes(${m.mailboxid})`, contentId?: string): PartSpec => ({
    method: 'PATCH',
    url,
    body: { emailrouteraccessapproval: 1 },
    headers: { 'If-Match': '*' },
    ...(contentId ? { contentId } : {}),
  });

  it('runs top-level parts with absolute, server-relative and root-relative URLs, echoing Content-ID', async () => {
    const [a, b, c] = take(3);
    if (!a || !b || !c) throw new Error('seed');
    const before = sim.stats.batchParts;
    const response = await batch([
      approve(a, `${crm.root}mailboxes(${a.mailboxid})`, '1'),
      approve(b, `/contoso/api/data/v9.0/mailboxes(${b.mailboxid})`, '2'),
      approve(c, `mailboxes(${c.mailboxid})`, 'third'),
      { method: 'GET', url: `mailboxes(${a.mailboxid})?$select=emailrouteraccessapproval`, contentId: '4' },
    ]);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^multipart\/mixed; boundary=batchresponse_/);
    expect(response.parts.map((p) => [p.status, p.contentId])).toEqual([[204, '1'], [204, '2'], [204, 'third'], [200, '4']]);
    expect(JSON.parse(response.parts[3]?.body ?? '{}')).toMatchObject({ mailboxid: a.mailboxid, emailrouteraccessapproval: 1 });
    expect([a, b, c].map((m) => m.emailrouteraccessapproval)).toEqual([1, 1, 1]);
    expect(response.text).toContain(`HTTP/1.1 204 No Content${CRLF}`);
    expect(sim.stats.batchParts - before).toBe(4);
  });

  it('rolls a change set back when one of its parts fails and answers with that one error', async () => {
    const [a, b] = take(2);
    const denied = mailboxesWithoutApprovePrivilege(sim.state)[0];
    if (!a || !b || !denied) throw new Error('seed');
    const versions = [a.versionnumber, b.versionnumber];
    const response = await batch([{ changeset: [approve(a, undefined, '1'), approve(b, undefined, '2'), approve(denied, undefined, '3')] }]);
    expect(response.status).toBe(200);
    expect(response.parts).toHaveLength(1);
    expect(response.parts[0]).toMatchObject({ status: 403, contentId: '3' });
    expect((JSON.parse(response.parts[0]?.body ?? '{}') as { error: { code: string } }).error.code).toBe('0x80040220');
    expect([a.emailrouteraccessapproval, b.emailrouteraccessapproval]).not.toContain(1);
    expect([a.versionnumber, b.versionnumber]).toEqual(versions);
  });

  it('does not schedule Test & Enable for a rolled-back change set', async () => {
    const [a] = take(1);
    if (!a) throw new Error('seed');
    const pendingBefore = sim.engine.pendingCount;
    const response = await batch([
      {
        changeset: [
          { method: 'PATCH', url: `mailboxes(${a.mailboxid})`, body: { testemailconfigurationscheduled: true } },
          { method: 'PATCH', url: `mailboxes(${a.mailboxid})`, body: { nosuchattribute: 1 } },
        ],
      },
    ]);
    expect(response.parts[0]?.status).toBe(400);
    expect(a.testemailconfigurationscheduled).toBe(false);
    expect(sim.engine.pendingCount).toBe(pendingBefore);
  });

  it('commits a good change set and answers each part inside a change set response', async () => {
    const [a, b] = take(2);
    if (!a || !b) throw new Error('seed');
    const response = await batch([{ changeset: [approve(a, undefined, '1'), approve(b, undefined, '2')] }]);
    expect(response.parts).toHaveLength(1);
    expect(response.parts[0]?.changeset?.map((p) => [p.status, p.contentId])).toEqual([[204, '1'], [204, '2']]);
    expect([a.emailrouteraccessapproval, b.emailrouteraccessapproval]).toEqual([1, 1]);
  });

  it('stops at the first failed part without continue-on-error, and goes on with it', async () => {
    const [a, b, c, d] = take(4);
    if (!a || !b || !c || !d) throw new Error('seed');
    const missing: PartSpec = { method: 'PATCH', url: 'mailboxes(00000000-0000-4000-8000-000000000bad)', body: { emailrouteraccessapproval: 1 }, headers: { 'If-Match': '*' } };
    const stop = await batch([approve(a), missing, approve(b)]);
    expect(stop.parts.map((p) => p.status)).toEqual([204, 404]);
    expect(b.emailrouteraccessapproval).not.toBe(1);
    expect(stop.headers.get('preference-applied')).toBeNull();

    const go = await batch([approve(c), missing, { changeset: [approve(d)] }], { Prefer: 'odata.continue-on-error' });
    expect(go.headers.get('preference-applied')).toBe('odata.continue-on-error');
    expect(go.parts.map((p) => p.status)).toEqual([204, 404, 0]);
    expect(go.parts[2]?.changeset?.map((p) => p.status)).toEqual([204]);
    expect([c.emailrouteraccessapproval, d.emailrouteraccessapproval]).toEqual([1, 1]);
  });

  it('refuses GET inside a change set, nested $batch, and more than 1000 requests', async () => {
    const [a] = take(1);
    if (!a) throw new Error('seed');
    const get = await batch([{ changeset: [{ method: 'GET', url: 'WhoAmI' }] }]);
    expect(get.parts[0]?.status).toBe(400);
    const nested = await batch([{ method: 'POST', url: '$batch', body: {} }]);
    expect(nested.parts[0]?.status).toBe(400);
    const many = Array.from({ length: 1001 }, () => approve(a));
    const tooMany = await batch(many);
    expect(tooMany.status).toBe(400);
    expect(errorOf(tooMany).message).toContain('1000');
    expect(a.emailrouteraccessapproval).not.toBe(1);
    const exactly = await batch(many.slice(0, 1000));
    expect(exactly.status).toBe(200);
    expect(exactly.parts).toHaveLength(1000);
  });

  it('answers 400 for a batch without a multipart boundary or without its closing delimiter', async () => {
    const noBoundary = await crm.send('POST', '$batch', 'x', { 'Content-Type': 'multipart/mixed' });
    expect(noBoundary.status).toBe(400);
    const truncated = await crm.send('POST', '$batch', `--b${CRLF}Content-Type: application/http${CRLF}${CRLF}GET WhoAmI HTTP/1.1${CRLF}`, {
      'Content-Type': 'multipart/mixed; boundary=b',
    });
    expect(truncated.status).toBe(400);
  });

  it('serves GET parts with their own Prefer header (paging inside a batch)', async () => {
    const response = await batch([
      { method: 'GET', url: 'mailboxes?$select=emailaddress&$filter=statecode%20eq%200', headers: { Prefer: 'odata.maxpagesize=5' } },
    ]);
    const page = JSON.parse(response.parts[0]?.body ?? '{}') as { value: unknown[]; '@odata.nextLink'?: string };
    expect(page.value).toHaveLength(5);
    expect(page['@odata.nextLink']).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/contoso\/api\/data\/v9\.0\/mailboxes\?/);
    const next = await crm.getUrl(page['@odata.nextLink'] ?? '', { Prefer: 'odata.maxpagesize=5' });
    expect(next.status).toBe(200);
  });
});
