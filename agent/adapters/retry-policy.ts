/**
 * When and how long to wait before trying a CRM request again. 5xx, connection errors and time-outs
 * are transient (on-premises servers time out under load); 4xx are permanent.
 */
export interface RetryPolicy {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetryDelays = { baseDelayMs: 500, maxDelayMs: 30_000 } as const;

export function isRetryableStatus(status: number): boolean {
  return status >= 500 && status <= 599;
}

const transientCodes = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'CRM_TIMEOUT',
]);

/** A network-level failure (no HTTP status) worth another try. */
export function isTransientNetworkError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined && transientCodes.has(code)) return true;
  return /socket hang up|other side closed/i.test(error.message);
}

/** Exponential backoff with jitter: a random delay in [c/2, c] where c = min(max, base * 2^attempt); attempt starts at 0. */
export function backoffDelay(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
