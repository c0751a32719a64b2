/**
 * The HTTP client under botbuilder's ConnectorClient. The SDK's own pipeline retries 429 and 5xx
 * itself with real timers; this client turns the statuses the poster decides about (412, 429,
 * 5xx) into a plain error carrying the status and Retry-After, so TeamsPoster is the one place
 * that retries (bounded, with an injectable sleep). Everything else passes through unchanged.
 */
export class ConnectorHttpError extends Error {
  readonly statusCode: number;
  readonly retryAfter: string | undefined;
  /** Not called `response`: core-client would try to deserialize it as a pipeline response. */
  readonly responseHeaders: Record<string, string>;

  constructor(method: string, url: string, status: number, headers: Record<string, string>) {
    super(`Bot Framework connector answered ${status} to ${method} ${safeUrl(url)}`);
    // Not named RestError on purpose: the SDK's retry policies must not act on it.
    this.name = 'ConnectorHttpError';
    this.statusCode = status;
    this.retryAfter = headers['retry-after'];
    this.responseHeaders = headers;
  }
}

interface HeadersLike {
  toJson(options?: { preserveCase?: boolean }): Record<string, string>;
}

/** The parts of @azure/core-http-compat's WebResourceLike that are read here. */
interface WebResourceLike {
  url: string;
  method: string;
  headers: HeadersLike;
  body?: unknown;
  abortSignal?: AbortSignal;
  timeout?: number;
}

class ResponseHeaders implements HeadersLike {
  readonly #map: Record<string, string>;
  constructor(map: Record<string, string>) {
    this.#map = map;
  }
  toJson(): Record<string, string> {
    return { ...this.#map };
  }
  get(name: string): string | undefined {
    return this.#map[name.toLowerCase()];
  }
}

export interface ConnectorHttpClientOptions {
  fetch?: typeof fetch;
  timeoutMs?: number;
}

export function createConnectorHttpClient(options: ConnectorHttpClientOptions = {}): {
  sendRequest(request: WebResourceLike): Promise<{ request: WebResourceLike; status: number; headers: ResponseHeaders; bodyAsText: string }>;
} {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 15_000;
  return {
    async sendRequest(request) {
      const signals = [AbortSignal.timeout(request.timeout && request.timeout > 0 ? request.timeout : timeoutMs)];
      if (request.abortSignal) signals.push(request.abortSignal);
      const init: RequestInit = {
        method: request.method,
        headers: request.headers.toJson({ preserveCase: true }),
        signal: AbortSignal.any(signals),
      };
      if (request.body !== undefined && request.body !== null && request.method !== 'GET') {
        init.body = typeof request.body === 'string' ? request.body : JSON.stringify(request.body);
      }
      const res = await doFetch(request.url, init);
      const headers: Record<string, string> = {};
      res.headers.forEach((value, key) => {
        headers[key.toLowerCase()] = value;
      });
      const bodyAsText = await res.text();
      if (res.status === 412 || res.status === 429 || res.status >= 500) {
        throw new ConnectorHttpError(request.method, request.url, res.status, headers);
      }
      return { request, status: res.status, headers: new ResponseHeaders(headers), bodyAsText };
    },
  };
}

function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(url)';
  }
}
