import { isSetupError, userMessage } from '../core/setup-error.ts';

/**
 * The one place the bot turns an error into what a person reads (a reply, an invoke answer, a
 * card). SetupErrors say what went wrong and what to do (core/setup-error.ts `userMessage`); a
 * Redis that does not answer gets its own text, because the person can do nothing but wait or tell
 * the administrator; anything else is "something went wrong inside the bot".
 */
export const REDIS_UNAVAILABLE_MESSAGE =
  "The bot cannot reach its Redis right now; try again in a minute; if it persists tell the bot's administrator.";

export function describeError(error: unknown): string {
  if (isRedisUnavailable(error)) return REDIS_UNAVAILABLE_MESSAGE;
  return userMessage(error);
}

const redisErrorNames = new Set(['MaxRetriesPerRequestError', 'ConnectionClosedError']);
const redisErrorText = /enableOfflineQueue|Command timed out|Connection is closed|Reached the max retries per request|Connection in subscriber mode|LOADING|MASTERDOWN|READONLY/;

/** True for the errors ioredis gives when Redis is down, unreachable or too slow (also inside a cause chain). */
export function isRedisUnavailable(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    if (isSetupError(e) && e.code === 'REDIS_UNREACHABLE') return true;
    if (e instanceof Error) {
      if (redisErrorNames.has(e.name) || redisErrorText.test(e.message)) return true;
    }
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}
