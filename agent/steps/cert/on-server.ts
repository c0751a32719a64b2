import { SetupError, isSetupError } from '../../../core/setup-error.ts';

/** The same error, naming the server it happened on (the step's message says "on <server>"). */
export function onServerError(server: string, error: unknown): SetupError {
  const e = isSetupError(error) ? error : new SetupError('STEP_FAILED', error instanceof Error ? error.message : String(error), { cause: error });
  return new SetupError(e.code, e.message, {
    ...(e.hint === undefined ? {} : { hint: e.hint }),
    retryable: e.retryable,
    cause: error,
    details: { ...e.details, server },
  });
}

/** Runs `fn` for one server; a failure names the server. */
export async function onServer<T>(server: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw onServerError(server, error);
  }
}

