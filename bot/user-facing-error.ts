import { isSetupError, userMessage } from '../core/setup-error.ts';
import type { RunError } from './runs/run-model.ts';

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

/** An error as the agent reports it (jobs/job-types.ts, event `failed`). */
export interface ReportedError {
  code: string;
  message: string;
  hint?: string | undefined;
}

/**
 * What a run card shows for an error the agent reported. A SetupError of the agent (a stable code)
 * already says what went wrong and what to do, and is kept. Anything else reaches the bot as
 * INTERNAL with the raw text of an exception, which means nothing to the person and may show
 * internals: like userMessage, the card says it went wrong inside the agent and what to do; the
 * raw text stays in the logs.
 */
export function runErrorFromAgent(error: ReportedError, runId: string): RunError {
  if (error.code !== 'INTERNAL' && /^[A-Z][A-Z0-9_]{1,63}$/.test(error.code)) {
    return { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
  }
  return {
    code: 'INTERNAL',
    message: 'Something went wrong inside the on-premises agent, so the run stopped.',
    hint: `The details are in the agent's log (run ${runId}). Try again, and tell the bot's maintainers if it keeps happening.`,
  };
}
