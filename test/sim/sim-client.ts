import type { CrmSimulator } from '../../sim/crm-simulator.ts';

/** A tiny Web API client for the simulator tests: real HTTP, JSON in and out. */
export interface SimResponse {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

export interface SimClient {
  root: string;
  get(resource: string, params?: Record<string, string>, headers?: Record<string, string>): Promise<SimResponse>;
  getUrl(url: string, headers?: Record<string, string>): Promise<SimResponse>;
  patch(resource: string, body: unknown, headers?: Record<string, string>): Promise<SimResponse>;
  send(method: string, resource: string, body?: string, headers?: Record<string, string>): Promise<SimResponse>;
}

async function toResponse(response: Response): Promise<SimResponse> {
  const text = await response.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

const baseHeaders = { 'OData-Version': '4.0', 'OData-MaxVersion': '4.0', Accept: 'application/json' };

export function simClient(sim: CrmSimulator, version = 'v9.0'): SimClient {
  const root = `${sim.orgUrl}/api/data/${version}/`;
  const getUrl = async (url: string, headers: Record<string, string> = {}): Promise<SimResponse> =>
    toResponse(await fetch(url, { headers: { ...baseHeaders, ...headers } }));
  return {
    root,
    getUrl,
    get: (resource, params = {}, headers = {}) => {
      const query = new URLSearchParams(params).toString();
      return getUrl(`${root}${resource}${query ? `?${query}` : ''}`, headers);
    },
    patch: async (resource, body, headers = {}) =>
      toResponse(
        await fetch(`${root}${resource}`, {
          method: 'PATCH',
          headers: { ...baseHeaders, 'Content-Type': 'application/json', 'If-Match': '*', ...headers },
          body: typeof body === 'string' ? body : JSON.stringify(body),
        }),
      ),
    send: async (method, resource, body, headers = {}) =>
      toResponse(await fetch(`${root}${resource}`, { method, headers: { ...baseHeaders, ...headers }, ...(body === undefined ? {} : { body }) })),
  };
}

/** The `value` array of a collection response. */
export function rows(response: SimResponse): Array<Record<string, unknown>> {
  const body = response.json as { value?: Array<Record<string, unknown>> } | undefined;
  if (!body?.value) throw new Error(`not a collection response (${response.status}): ${response.text.slice(0, 300)}`);
  return body.value;
}

export function errorOf(response: SimResponse): { code: string; message: string } {
  const body = response.json as { error?: { code: string; message: string } } | undefined;
  if (!body?.error) throw new Error(`not an error response (${response.status}): ${response.text.slice(0, 300)}`);
  return body.error;
}

/** Waits until `check` returns true (polling), or fails after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
