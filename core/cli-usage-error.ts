import { isSetupError } from './setup-error.ts';

/** The exit code of the command-line tools for a usage or configuration error. */
export const EXIT_USAGE = 2;

/** A command line the tool cannot read: its message says what to type instead. */
export class CliUsageError extends Error {
  override readonly name = 'CliUsageError';
}

/**
 * What a command-line tool does with an error of its arguments or configuration: a CliUsageError
 * prints its message and the usage, a SetupError its message and hint; both give EXIT_USAGE.
 * Anything else is not a usage error and is thrown again.
 */
export function reportUsageError(error: unknown, usage: string, stderr: (text: string) => void): number {
  if (error instanceof CliUsageError) {
    stderr(`${error.message}\n\n${usage}\n`);
    return EXIT_USAGE;
  }
  if (isSetupError(error)) {
    stderr(`${error.message}${error.hint ? `\n${error.hint}` : ''}\n`);
    return EXIT_USAGE;
  }
  throw error;
}
