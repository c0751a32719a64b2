import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';

/** One HTTP exchange as the CRM client sees it. */
export interface HttpRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface HttpResponse {
  status: number;
  /** Header values by lower-case name; repeated headers keep every value. */
  headers: Record<string, string[]>;
  body: Buffer;
  /** The socket the response came on (NTLM authenticates a connection, not a request). */
  socket: Socket | undefined;
}

/** Moves requests to the server. `onSent` is called once for every HTTP request put on the wire. */
export interface HttpTransport {
  send(request: HttpRequest, onSent: () => void): Promise<HttpResponse>;
  close(): void;
}

/** Largest response the agent will buffer (a page of 5000 mailboxes is far below this). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export class HttpTimeoutError extends Error {
  readonly code = 'CRM_TIMEOUT';
  constructor(ms: number) {
    super(`no complete response within ${ms} ms`);
    this.name = 'HttpTimeoutError';
  }
}

export function header(response: Pick<HttpResponse, 'headers'>, name: string): string | undefined {
  return response.headers[name.toLowerCase()]?.[0];
}

export function createKeepAliveAgent(url: URL, maxSockets: number): http.Agent {
  const options = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' as const };
  return url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
}

/** Sends one request on `agent`, buffers the whole response, and enforces an overall time-out. */
export function sendOnce(agent: http.Agent, request: HttpRequest, timeoutMs: number, onSent: () => void): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    const lib = request.url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { ...request.headers };
    if (request.body !== undefined) headers['Content-Length'] = String(request.body.length);
    let socket: Socket | undefined;
    let settled = false;
    const finish = (error: Error | undefined, response?: HttpResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else if (response) resolve(response);
    };
    const req = lib.request(request.url, { method: request.method, headers, agent });
    const timer = setTimeout(() => {
      const error = new HttpTimeoutError(timeoutMs);
      req.destroy(error);
      finish(error);
    }, timeoutMs);
    req.on('socket', (s: Socket) => {
      socket = s;
    });
    req.on('error', (error) => finish(error));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          req.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (error) => finish(error));
      res.on('end', () => {
        const headersOut: Record<string, string[]> = {};
        for (const [name, values] of Object.entries(res.headersDistinct)) {
          if (values) headersOut[name.toLowerCase()] = values;
        }
        finish(undefined, { status: res.statusCode ?? 0, headers: headersOut, body: Buffer.concat(chunks), socket });
      });
    });
    onSent();
    req.end(request.body);
  });
}

/** No authentication (or authentication in front of the agent): one keep-alive pool. */
export class PlainTransport implements HttpTransport {
  readonly #agent: http.Agent;
  readonly #timeoutMs: number;

  constructor(options: { baseUrl: URL; maxSockets: number; timeoutMs: number }) {
    this.#agent = createKeepAliveAgent(options.baseUrl, options.maxSockets);
    this.#timeoutMs = options.timeoutMs;
  }

  send(request: HttpRequest, onSent: () => void): Promise<HttpResponse> {
    return sendOnce(this.#agent, request, this.#timeoutMs, onSent);
  }

  close(): void {
    this.#agent.destroy();
  }
}
