import { rootCertificates } from 'node:tls';
import { Agent, fetch, type Response } from 'undici';
import type { Logger } from '../../../core/logger.ts';
import { SetupError } from '../../../core/setup-error.ts';
import { backoffDelay, isTransientNetworkError } from '../retry-policy.ts';

/**
 * HTTPS for the Graph client (login and Graph hosts alike): undici with an Agent that trusts the
 * system roots plus TLS_CA_FILE, bounded retries of 429 (Retry-After) and 5xx with backoff, and
 * network failures turned into SetupErrors. TLS verification is never switched off.
 */

export const TLS_CA_HINT =
  'If a TLS-inspecting proxy (or the simulator) sits between the agent and Microsoft, put its CA certificate in a PEM file and set TLS_CA_FILE to that file; otherwise check the host names in GRAPH_LOGIN_URL and GRAPH_URL.';

const TLS_ERROR_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Longest wait honoured from Retry-After or backoff (the job has its own time budget). */
const MAX_RETRY_DELAY_MS = 60_000;
const BASE_DELAY_MS = 500;

export interface GraphHttpOptions {
  caPem?: string;
  logger: Logger;
  /** Retries after the first try for 429, 5xx and network errors (default 4). */
  maxRetries?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Per request (default 30 s). */
  timeoutMs?: number;
  random?: () => number;
}

export interface GraphHttpRequest {
  method: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface GraphHttp {
  /**
   * Sends the request, retrying 429/5xx/network failures; returns the last response (which may
   * still be 429/5xx when the retries are used up). Throws a SetupError (GRAPH_REQUEST_FAILED)
   * when no response could be had: TLS failures are not retried.
   */
  send(url: string, request: GraphHttpRequest): Promise<Response>;
  close(): Promise<void>;
}

function errorChain(error: unknown): Error[] {
  const chain: Error[] = [];
  let current: unknown = error;
  while (current instanceof Error && chain.length < 6) {
    chain.push(current);
    current = current.cause;
  }
  return chain;
}

/** The TLS error code of a fetch failure, if the failure is a certificate problem. */
export function tlsErrorCode(error: unknown): string | undefined {
  for (const e of errorChain(error)) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && TLS_ERROR_CODES.has(code)) return code;
  }
  return undefined;
}

function networkCause(error: unknown): Error | undefined {
  return errorChain(error).find((e) => isTransientNetworkError(e) || e.name === 'TimeoutError' || e.name === 'ConnectTimeoutError');
}

/** Retry-After in ms (seconds or an HTTP date), or undefined. */
export function retryAfterMs(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

export function isRetryableResponseStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

export function createGraphHttp(options: GraphHttpOptions): GraphHttp {
  const maxRetries = options.maxRetries ?? 4;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const random = options.random ?? Math.random;
  const dispatcher = new Agent({
    keepAliveTimeout: 10_000,
    connect: options.caPem === undefined ? {} : { ca: [...rootCertificates, options.caPem] },
  });
  const logger = options.logger;

  async function send(url: string, request: GraphHttpRequest): Promise<Response> {
    const target = new URL(url);
    const where = `${request.method} ${target.host}${target.pathname}`;
    for (let attempt = 0; ; attempt += 1) {
      let response: Response;
      try {
        response = await fetch(url, {
          method: request.method,
          headers: request.headers ?? {},
          ...(request.body === undefined ? {} : { body: request.body }),
          dispatcher,
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        const tlsCode = tlsErrorCode(error);
        if (tlsCode !== undefined) {
          throw new SetupError('GRAPH_REQUEST_FAILED', `The TLS certificate of ${target.host} is not trusted (${tlsCode}), so the agent did not talk to it.`, {
            hint: TLS_CA_HINT,
            retryable: false,
            cause: error,
            details: { host: target.host, tlsCode },
          });
        }
        const cause = networkCause(error);
        const reason = cause ? `${cause.name}${(cause as NodeJS.ErrnoException).code ? ` ${(cause as NodeJS.ErrnoException).code}` : ''}: ${cause.message}` : error instanceof Error ? error.message : String(error);
        if (attempt < maxRetries) {
          const delay = backoffDelay(attempt, { baseDelayMs: BASE_DELAY_MS, maxDelayMs: MAX_RETRY_DELAY_MS }, random);
          logger.warn({ where, attempt: attempt + 1, delayMs: delay, reason }, 'graph request failed on the network; retrying');
          await sleep(delay);
          continue;
        }
        throw new SetupError('GRAPH_REQUEST_FAILED', `Could not reach ${target.host} (${reason}) after ${attempt + 1} tries.`, {
          hint: 'Check that the agent host can reach the login and Graph hosts over HTTPS (proxy, firewall, DNS).',
          retryable: true,
          cause: error,
          details: { host: target.host },
        });
      }
      if (isRetryableResponseStatus(response.status) && attempt < maxRetries) {
        const fromHeader = retryAfterMs(response.headers.get('retry-after'));
        const delay = Math.min(MAX_RETRY_DELAY_MS, fromHeader ?? backoffDelay(attempt, { baseDelayMs: BASE_DELAY_MS, maxDelayMs: MAX_RETRY_DELAY_MS }, random));
        await response.arrayBuffer().catch(() => undefined);
        logger.warn({ where, status: response.status, attempt: attempt + 1, delayMs: delay }, 'graph request throttled or failed; retrying');
        await sleep(delay);
        continue;
      }
      logger.debug({ where, status: response.status, attempt: attempt + 1 }, 'graph request');
      return response;
    }
  }

  return {
    send,
    close: () => dispatcher.close(),
  };
}
