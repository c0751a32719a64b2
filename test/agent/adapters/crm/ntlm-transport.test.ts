import { afterEach, describe, expect, it } from 'vitest';
import { CrmClient } from '../../../../agent/adapters/crm/client.ts';
import { sendJson, startLocalServer, type LocalServer, type SeenRequest } from '../../support/local-server.ts';

const PASSWORD = 'S3cret!pass';

/** A Type 2 (challenge) message with target info, as IIS sends it. */
function type2Message(): string {
  const utf16 = (s: string) => Buffer.from(s, 'utf16le');
  const target = utf16('CONTOSO');
  const avDomain = utf16('CONTOSO');
  const targetInfo = Buffer.alloc(4 + avDomain.length + 4);
  targetInfo.writeUInt16LE(2, 0); // MsvAvNbDomainName
  targetInfo.writeUInt16LE(avDomain.length, 2);
  avDomain.copy(targetInfo, 4);
  // MsvAvEOL: four zero bytes already there
  const header = Buffer.alloc(56);
  header.write('NTLMSSP\0', 0, 'ascii');
  header.writeUInt32LE(2, 8);
  header.writeUInt16LE(target.length, 12);
  header.writeUInt16LE(target.length, 14);
  header.writeUInt32LE(56, 16);
  const flags = 0x1 | 0x4 | 0x200 | 0x8000 | 0x80000 | 0x800000 | 0x2000000;
  header.writeUInt32LE(flags, 20);
  Buffer.from('0123456789abcdef', 'hex').copy(header, 24);
  header.writeUInt16LE(targetInfo.length, 40);
  header.writeUInt16LE(targetInfo.length, 42);
  header.writeUInt32LE(56 + target.length, 44);
  return `NTLM ${Buffer.concat([header, target, targetInfo]).toString('base64')}`;
}

function decode(authorization: string | undefined): Buffer | undefined {
  const m = /^NTLM (.+)$/.exec(authorization ?? '');
  return m?.[1] ? Buffer.from(m[1], 'base64') : undefined;
}

function field(msg: Buffer, at: number): string {
  const len = msg.readUInt16LE(at);
  const offset = msg.readUInt32LE(at + 4);
  return msg.subarray(offset, offset + len).toString('utf16le');
}

interface NtlmServer {
  server: LocalServer;
  type3: { user: string; domain: string; socketId: number; type1SocketId: number }[];
}

const whoAmI = { UserId: 'u-1', BusinessUnitId: 'b', OrganizationId: 'o' };
/** What an authenticated request gets: 204 for a write, WhoAmI's answer for a read. */
function answer(req: SeenRequest, res: Parameters<Parameters<typeof startLocalServer>[0]>[1]): void {
  if (req.method === 'GET') sendJson(res, 200, whoAmI);
  else {
    res.writeHead(204);
    res.end();
  }
}

async function ntlmServer(options: { acceptPassword: boolean; forgetAfter?: number }): Promise<NtlmServer> {
  const authed = new Set<number>();
  const type1Sockets = new Map<number, number>();
  const type3: NtlmServer['type3'] = [];
  let served = 0;
  const server = await startLocalServer((req: SeenRequest, res) => {
    const msg = decode(req.headers.authorization);
    if (msg && msg.toString('ascii', 0, 8) === 'NTLMSSP\0') {
      const type = msg.readUInt32LE(8);
      if (type === 1) {
        type1Sockets.set(req.socketId, req.socketId);
        res.writeHead(401, { 'WWW-Authenticate': type2Message(), 'Content-Length': '0' });
        res.end();
        return;
      }
      if (type === 3) {
        type3.push({ user: field(msg, 36), domain: field(msg, 28), socketId: req.socketId, type1SocketId: type1Sockets.get(req.socketId) ?? -1 });
        if (!options.acceptPassword) {
          res.writeHead(401, [['WWW-Authenticate', 'Negotiate'], ['WWW-Authenticate', 'NTLM']]);
          res.end();
          return;
        }
        authed.add(req.socketId);
        answer(req, res);
        return;
      }
    }
    if (authed.has(req.socketId)) {
      served += 1;
      if (served === options.forgetAfter) authed.delete(req.socketId);
      else {
        answer(req, res);
        return;
      }
    }
    res.writeHead(401, [['WWW-Authenticate', 'Negotiate'], ['WWW-Authenticate', 'NTLM']]);
    res.end('unauthorized');
  });
  return { server, type3 };
}

let current: NtlmServer | undefined;
let client: CrmClient | undefined;
afterEach(async () => {
  client?.close();
  await current?.server.close();
  client = undefined;
  current = undefined;
});

function ntlmClient(origin: string, slots = 1): CrmClient {
  return CrmClient.create({
    orgUrl: `${origin}/contoso`,
    auth: { kind: 'ntlm', username: 'svc-setup', password: PASSWORD, domain: 'contoso' },
    pageSize: 100,
    timeoutMs: 2_000,
    maxRetries: 0,
    maxSockets: slots,
  });
}

describe('NTLM transport', () => {
  it('does the Type 1 / Type 2 / Type 3 handshake on one kept-alive connection, then reuses it without a handshake', async () => {
    current = await ntlmServer({ acceptPassword: true });
    client = ntlmClient(current.server.origin);
    expect((await client.whoAmI()).UserId).toBe('u-1');
    expect(await client.whoAmI()).toMatchObject({ UserId: 'u-1' });

    const reqs = current.server.requests;
    expect(reqs).toHaveLength(3);
    expect(decode(reqs[0]?.headers.authorization)?.readUInt32LE(8)).toBe(1);
    expect(decode(reqs[1]?.headers.authorization)?.readUInt32LE(8)).toBe(3);
    expect(reqs[2]?.headers.authorization).toBeUndefined();
    expect(new Set(reqs.map((r) => r.socketId)).size).toBe(1);
    expect(current.type3).toEqual([{ user: 'svc-setup', domain: 'CONTOSO', socketId: reqs[0]?.socketId, type1SocketId: reqs[0]?.socketId }]);
    expect(client.requestCount).toBe(3);
    // The password never travels in clear.
    for (const r of reqs) expect(JSON.stringify(r.headers) + r.body + Buffer.from(JSON.stringify(r.headers)).toString('base64')).not.toContain(PASSWORD);
  });

  it('authenticates each connection slot once when requests run in parallel', async () => {
    current = await ntlmServer({ acceptPassword: true });
    const c = ntlmClient(current.server.origin, 2);
    client = c;
    await Promise.all(Array.from({ length: 6 }, () => c.whoAmI()));
    expect(current.type3).toHaveLength(2);
    expect(current.type3.every((t) => t.socketId === t.type1SocketId)).toBe(true);
    expect(current.server.requests.filter((r) => !r.headers.authorization)).toHaveLength(6 - current.type3.length);
  });

  it('negotiates a write with GET WhoAmI, so the write goes out once, with the Type 3, on the same connection', async () => {
    current = await ntlmServer({ acceptPassword: true });
    client = ntlmClient(current.server.origin);
    const id = '00000000-0000-0000-0000-000000000001';
    await client.patch('mailboxes', id, { emailrouteraccessapproval: 1 });

    const reqs = current.server.requests;
    expect(reqs.map((r) => [r.method, r.url, decode(r.headers.authorization)?.readUInt32LE(8)])).toEqual([
      ['GET', '/contoso/api/data/v9.0/WhoAmI', 1],
      ['PATCH', `/contoso/api/data/v9.0/mailboxes(${id})`, 3],
    ]);
    expect(reqs[0]?.body).toBe('');
    expect(reqs[0]?.headers['if-match']).toBeUndefined();
    expect(reqs[1]?.body).toBe('{"emailrouteraccessapproval":1}');
    expect(reqs[1]?.headers['if-match']).toBe('*');
    expect(new Set(reqs.map((r) => r.socketId)).size).toBe(1);
  });

  it('sends a write exactly once to a server that does not ask for authentication', async () => {
    const server = await startLocalServer(answer);
    current = { server, type3: [] };
    client = ntlmClient(server.origin);
    const id = '00000000-0000-0000-0000-000000000002';
    await client.patch('mailboxes', id, { testemailconfigurationscheduled: true });
    const me = await client.whoAmI();
    expect(me.UserId).toBe('u-1');
    const patches = server.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(1);
    expect(patches[0]?.body).toBe('{"testemailconfigurationscheduled":true}');
    expect(server.requests.map((r) => r.method)).toEqual(['GET', 'PATCH', 'GET']); // a read needs no second request
  });

  it('authenticates again when the server forgets the connection (401 offering NTLM), and the write still goes out once', async () => {
    current = await ntlmServer({ acceptPassword: true, forgetAfter: 1 });
    client = ntlmClient(current.server.origin);
    await client.whoAmI();
    const id = '00000000-0000-0000-0000-000000000003';
    await client.patch('mailboxes', id, { emailrouteraccessapproval: 1 });
    expect(current.type3).toHaveLength(2);
    const reqs = current.server.requests;
    expect(reqs.map((r) => [r.method, decode(r.headers.authorization)?.readUInt32LE(8) ?? 0])).toEqual([
      ['GET', 1],
      ['GET', 3],
      ['PATCH', 0], // refused with 401: nothing executed
      ['GET', 1],
      ['PATCH', 3],
    ]);
  });

  it('reports rejected credentials as CRM_AUTH_FAILED naming the account, not the password', async () => {
    current = await ntlmServer({ acceptPassword: false });
    client = ntlmClient(current.server.origin);
    const error = await client.whoAmI().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CRM_AUTH_FAILED' });
    expect((error as Error).message).toContain('contoso\\svc-setup');
    expect((error as Error).message).not.toContain(PASSWORD);
  });
});
