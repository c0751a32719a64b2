import type http from 'node:http';
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import ntlm from 'httpntlm/ntlm.js';
import { SetupError } from '../../../core/setup-error.ts';
import { createKeepAliveAgent, sendOnce, type HttpRequest, type HttpResponse, type HttpTransport } from './http-transport.ts';

export interface NtlmCredentials {
  username: string;
  password: string;
  domain: string;
  workstation?: string;
}

interface Slot {
  agent: http.Agent;
  /** The connection this slot authenticated; NTLM authenticates connections, not requests. */
  authenticated: Socket | undefined;
}

const authHint =
  'Check CRM_USERNAME, CRM_PASSWORD and CRM_DOMAIN (the account must be a CRM user with Windows authentication allowed), ' +
  'and that the CRM web site has Windows Authentication with the NTLM provider enabled.';

/**
 * Windows integrated authentication (NTLM) for an internal CRM URL. Each connection slot has its
 * own keep-alive agent with a single socket, so the Type 1 → Type 2 → Type 3 handshake happens on
 * one connection; later requests on that connection need no handshake. Slots are handed out one
 * request at a time, so the number of slots bounds the requests in flight.
 */
export class NtlmTransport implements HttpTransport {
  readonly #slots: Slot[];
  readonly #free: Slot[];
  readonly #waiting: ((slot: Slot) => void)[] = [];
  readonly #credentials: Required<NtlmCredentials>;
  readonly #timeoutMs: number;
  readonly #negotiateUrl: URL;

  /** `baseUrl` is the Web API service root; writes negotiate with `GET <baseUrl>WhoAmI`. */
  constructor(options: { baseUrl: URL; slots: number; timeoutMs: number; credentials: NtlmCredentials }) {
    this.#negotiateUrl = new URL('WhoAmI', options.baseUrl);
    this.#slots = Array.from({ length: Math.max(1, options.slots) }, () => ({
      agent: createKeepAliveAgent(options.baseUrl, 1),
      authenticated: undefined,
    }));
    this.#free = [...this.#slots];
    this.#timeoutMs = options.timeoutMs;
    this.#credentials = {
      ...options.credentials,
      workstation: options.credentials.workstation ?? hostname().split('.')[0]?.toUpperCase() ?? '',
    };
  }

  async send(request: HttpRequest, onSent: () => void): Promise<HttpResponse> {
    const slot = await this.#acquire();
    try {
      return await this.#sendOnSlot(slot, request, onSent);
    } finally {
      this.#release(slot);
    }
  }

  close(): void {
    for (const slot of this.#slots) slot.agent.destroy();
  }

  async #sendOnSlot(slot: Slot, request: HttpRequest, onSent: () => void): Promise<HttpResponse> {
    if (slot.authenticated && !slot.authenticated.destroyed) {
      const response = await sendOnce(slot.agent, request, this.#timeoutMs, onSent);
      if (response.status !== 401) return response;
      // The server forgot the connection (or closed it and we got a new one): authenticate again.
      // A 401 executed nothing, so the request can go out again with the new handshake.
      slot.authenticated = undefined;
    }
    // The Type 1 leg must never execute a write: a server that does not challenge runs it as it
    // is. A read negotiates with itself; a write negotiates with `GET WhoAmI` on the same
    // connection (IIS authenticates the connection) and goes out once, with the Type 3.
    const read = isRead(request.method);
    const negotiate: HttpRequest = {
      method: read ? request.method : 'GET',
      url: read ? request.url : this.#negotiateUrl,
      headers: {
        ...(read ? request.headers : withoutBodyHeaders(request.headers)),
        Authorization: ntlm.createType1Message({ domain: this.#credentials.domain, workstation: this.#credentials.workstation }),
      },
    };
    const challengeResponse = await sendOnce(slot.agent, negotiate, this.#timeoutMs, onSent);
    const challenge = ntlmChallenge(challengeResponse);
    if (challengeResponse.status !== 401 || !challenge) {
      if (challengeResponse.status === 401) {
        throw new SetupError('CRM_AUTH_FAILED', 'CRM refused the NTLM negotiation (no NTLM challenge in its answer).', { hint: authHint });
      }
      // The server does not ask for authentication: a read has its answer; a write goes out now.
      return read ? challengeResponse : sendOnce(slot.agent, request, this.#timeoutMs, onSent);
    }
    let parseError: Error | undefined;
    const type2 = ntlm.parseType2Message(challenge, (error) => {
      parseError = error;
    });
    if (!type2) {
      throw new SetupError('CRM_AUTH_FAILED', `CRM sent an NTLM challenge that cannot be read: ${parseError?.message ?? 'unknown format'}.`, { hint: authHint });
    }
    const authenticate: HttpRequest = {
      ...request,
      headers: { ...request.headers, Authorization: ntlm.createType3Message(type2, { ...this.#credentials }) },
    };
    const response = await sendOnce(slot.agent, authenticate, this.#timeoutMs, onSent);
    if (response.status === 401) {
      const sameConnection = response.socket !== undefined && response.socket === challengeResponse.socket;
      throw new SetupError(
        'CRM_AUTH_FAILED',
        sameConnection
          ? `CRM did not accept the NTLM credentials of ${this.#credentials.domain}\\${this.#credentials.username}.`
          : 'CRM closed the connection during the NTLM handshake, so the handshake could not complete.',
        { hint: sameConnection ? authHint : 'A proxy or load balancer between the agent and CRM must keep connections alive for NTLM; or point CRM_URL at a CRM server directly.' },
      );
    }
    slot.authenticated = response.socket;
    return response;
  }

  #acquire(): Promise<Slot> {
    const slot = this.#free.pop();
    if (slot) return Promise.resolve(slot);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(slot: Slot): void {
    const next = this.#waiting.shift();
    if (next) next(slot);
    else this.#free.push(slot);
  }
}

/** The `NTLM <base64>` challenge among the WWW-Authenticate headers (IIS also offers Negotiate). */
function ntlmChallenge(response: HttpResponse): string | undefined {
  const values = (response.headers['www-authenticate'] ?? []).flatMap((v) => v.split(/,\s*(?=NTLM|Negotiate)/i));
  return values.map((v) => v.trim()).find((v) => /^NTLM\s+\S+/i.test(v));
}

const isRead = (method: string) => method === 'GET' || method === 'HEAD';

/** The request's headers without those that describe a body or make a write conditional. */
function withoutBodyHeaders(headers: Record<string, string>): Record<string, string> {
  const dropped = new Set(['content-type', 'content-length', 'if-match', 'if-none-match', 'prefer']);
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !dropped.has(name.toLowerCase())));
}
