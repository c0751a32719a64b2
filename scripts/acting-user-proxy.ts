import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';

/**
 * "Acting as" for the Microsoft 365 Agents Playground.
 *
 * The Playground (0.2.28) always acts as the `currentUser` of its config: its UI has no way to
 * switch users, and a message typed in the compose box is always from `currentUser` (its server
 * ignores the `from` the page sends with a message). Card actions are different: for
 * `POST /_conversation/v1/invoke` (Action.Execute) and `/_conversation/v1/submit` (Action.Submit)
 * the server takes the acting user from the request's `from.id`, checks only that this user is a
 * member of the conversation, and fills in the user's name and aadObjectId from the config.
 *
 * This proxy sits in front of the Playground, adds a small "Acting as" selector to its page (a
 * cookie holds the choice) and rewrites `from.id` in those two requests, so one person can ask
 * (as `currentUser`) and another approve on the card, in one browser. Everyone is a member of
 * the group chat and of the team's channels; the personal chat holds only `currentUser`, so
 * clicks there are left as they are. Everything else (the page, its assets, messages, the
 * WebSocket streams) passes through untouched. To send a *message* as someone else, use the
 * Playground's own "Mock an Activity → Custom activity" with a `from` of your choice.
 */
export const actingUserCookie = 'setup_acting_user';
export const switcherPath = '/_setup/acting-user.js';

export interface SwitchableUser {
  id: string;
  name: string;
  note?: string;
}

export interface ActingUserProxyOptions {
  /** Where the Playground listens. */
  target: { host: string; port: number };
  /** Where the proxy listens (port 0 = a free port). */
  host?: string;
  port: number;
  users: readonly SwitchableUser[];
  /** The Playground's current user (the default). */
  defaultUserId: string;
  /** Requests in this conversation are never rewritten. */
  personalChatId: string;
}

export interface ActingUserProxy {
  url: string;
  port: number;
  close(): Promise<void>;
}

const actionPaths = /^\/_conversation\/v1\/(?:invoke|submit)(?:\?|$)/;

/** Reads one cookie's value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

/**
 * Returns the body to forward: with `from.id` replaced by the acting user when the request is a
 * card action (the only requests the Playground takes the acting user from) outside the personal
 * chat. Returns undefined when nothing changes.
 */
export function rewriteActingUser(
  path: string,
  body: unknown,
  actingUserId: string | undefined,
  personalChatId: string,
): Record<string, unknown> | undefined {
  if (!actingUserId || typeof body !== 'object' || body === null) return undefined;
  const record = body as Record<string, unknown>;
  if (!actionPaths.test(path)) return undefined;
  let conversationId: string | undefined;
  const conversation = record.conversation;
  if (typeof conversation === 'object' && conversation !== null) {
    const id = (conversation as Record<string, unknown>).id;
    if (typeof id === 'string') conversationId = id;
  }
  if (conversationId === undefined || conversationId === personalChatId) return undefined;
  const from = record.from;
  if (typeof from !== 'object' || from === null) return undefined;
  if ((from as Record<string, unknown>).id === actingUserId) return undefined;
  return { ...record, from: { ...(from as Record<string, unknown>), id: actingUserId } };
}

/** The script added to the Playground's page: a fixed "Acting as" selector. */
export function switcherScript(users: readonly SwitchableUser[], defaultUserId: string): string {
  const data = JSON.stringify({ users, defaultUserId, cookie: actingUserCookie });
  return `(() => {
  const cfg = ${data};
  const read = () => {
    const m = document.cookie.split(';').map((s) => s.trim()).find((s) => s.startsWith(cfg.cookie + '='));
    const id = m ? decodeURIComponent(m.slice(cfg.cookie.length + 1)) : cfg.defaultUserId;
    return cfg.users.some((u) => u.id === id) ? id : cfg.defaultUserId;
  };
  const mount = () => {
    if (document.getElementById('setup-acting-user')) return;
    const box = document.createElement('div');
    box.id = 'setup-acting-user-box';
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', 'Acting as');
    box.style.cssText = 'position:fixed;left:74px;bottom:12px;z-index:100000;width:236px;padding:8px 10px;' +
      'background:#fff8e1;border:1px solid #d4a017;border-radius:6px;font:13px Segoe UI,system-ui,sans-serif;color:#333;box-shadow:0 1px 4px rgba(0,0,0,.2)';
    const label = document.createElement('label');
    label.htmlFor = 'setup-acting-user';
    label.textContent = 'Clicking cards as (demo)';
    label.style.cssText = 'display:block;font-weight:600;margin-bottom:4px';
    const select = document.createElement('select');
    select.id = 'setup-acting-user';
    select.style.cssText = 'width:100%;font:inherit;padding:2px';
    for (const u of cfg.users) {
      const o = document.createElement('option');
      o.value = u.id;
      o.textContent = u.note ? u.name + ' (' + u.note + ')' : u.name;
      select.appendChild(o);
    }
    select.value = read();
    select.addEventListener('change', () => {
      document.cookie = cfg.cookie + '=' + encodeURIComponent(select.value) + '; path=/; SameSite=Strict';
    });
    const hint = document.createElement('div');
    hint.textContent = 'Who clicks card buttons (Approve, Reject, Confirm) in the group chat and the team channels. Typed messages always come from ' + (cfg.users.find((u) => u.id === cfg.defaultUserId) || { name: 'the current user' }).name + ' (a Playground limit).';
    hint.style.cssText = 'margin-top:4px;font-size:11px;color:#666';
    box.append(label, select, hint);
    document.body.appendChild(box);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mount);
  else mount();
})();
`;
}

export async function startActingUserProxy(options: ActingUserProxyOptions): Promise<ActingUserProxy> {
  const { target } = options;
  const script = switcherScript(options.users, options.defaultUserId);
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, res: ServerResponse, body?: Buffer): void => {
    const headers = { ...req.headers, host: `${target.host}:${target.port}` };
    if (body) {
      headers['content-length'] = String(body.length);
      delete headers['transfer-encoding'];
    }
    const upstream = httpRequest({ host: target.host, port: target.port, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`The Agents Playground did not answer: ${error.message}`);
    });
    if (body) upstream.end(body);
    else req.pipe(upstream);
  };

  const servePage = (req: IncomingMessage, res: ServerResponse): void => {
    const headers = { ...req.headers, host: `${target.host}:${target.port}`, 'accept-encoding': 'identity' };
    const upstream = httpRequest({ host: target.host, port: target.port, method: 'GET', path: req.url, headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        let html = Buffer.concat(chunks).toString('utf8');
        const tag = `<script src="${switcherPath}"></script>`;
        html = html.includes('</body>') ? html.replace('</body>', `${tag}</body>`) : html + tag;
        const out = { ...up.headers };
        delete out['content-length'];
        delete out['content-encoding'];
        delete out.etag;
        out['cache-control'] = 'no-store';
        res.writeHead(up.statusCode ?? 200, out);
        res.end(html);
      });
    });
    upstream.on('error', (error) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`The Agents Playground did not answer: ${error.message}`);
    });
    upstream.end();
  };

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    if (req.method === 'GET' && path === switcherPath) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(script);
      return;
    }
    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      servePage(req, res);
      return;
    }
    if (req.method === 'POST' && actionPaths.test(url)) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const acting = readCookie(req.headers.cookie, actingUserCookie);
        let rewritten: Record<string, unknown> | undefined;
        try {
          rewritten = rewriteActingUser(url, JSON.parse(raw.toString('utf8')) as unknown, acting, options.personalChatId);
        } catch {
          rewritten = undefined;
        }
        forward(req, res, rewritten ? Buffer.from(JSON.stringify(rewritten)) : raw);
      });
      return;
    }
    forward(req, res);
  });

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  // WebSockets (the conversation and log streams): a raw TCP pipe after replaying the request head.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const upstream = connect(target.port, target.host, () => {
      const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i] ?? '';
        const value = name.toLowerCase() === 'host' ? `${target.host}:${target.port}` : (req.rawHeaders[i + 1] ?? '');
        lines.push(`${name}: ${value}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const shownHost = (options.host ?? '127.0.0.1') === '127.0.0.1' ? 'localhost' : (options.host ?? 'localhost');
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
