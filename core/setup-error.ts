/**
 * The one error type of the project. `code` is stable (tests, logs and the user-facing text key
 * off it); `hint` says what the person should do; `retryable` tells the job layer whether BullMQ
 * may try again.
 */
export type SetupErrorCode =
  | 'CONFIG_INVALID'
  | 'REDIS_UNREACHABLE'
  | 'COMMAND_UNKNOWN'
  | 'COMMAND_INVALID'
  | 'FILTER_INVALID'
  | 'NOT_AUTHORIZED'
  | 'APPROVAL_NOT_FOUND'
  | 'APPROVAL_EXPIRED'
  | 'APPROVAL_ALREADY_DECIDED'
  | 'JOB_INVALID'
  | 'JOB_SIGNATURE_INVALID'
  | 'JOB_EXPIRED'
  | 'JOB_WRONG_DEPLOYMENT'
  /** BullMQ gave up on a job whose agent stopped during it too often (stalled more than maxStalledCount). */
  | 'JOB_STALLED'
  | 'CRM_UNREACHABLE'
  | 'CRM_AUTH_FAILED'
  | 'CRM_REQUEST_FAILED'
  | 'CRM_RESPONSE_INVALID'
  | 'PROFILE_NOT_FOUND'
  | 'PLAN_CHANGED'
  | 'TEAMS_POST_FAILED'
  | 'CONFIG_MISSING'
  | 'CERT_INVALID'
  | 'CERT_PASSWORD_WRONG'
  | 'CERT_REQUIREMENTS'
  | 'CERT_FILE_NOT_FOUND'
  | 'POWERSHELL_FAILED'
  | 'POWERSHELL_TIMEOUT'
  | 'GRAPH_AUTH_FAILED'
  | 'GRAPH_FORBIDDEN'
  | 'GRAPH_REQUEST_FAILED'
  | 'STEP_FAILED'
  | 'TWO_PERSON_RULE'
  /** A runbook run stopped at someone's request (cancel) before its next step. */
  | 'CANCELLED'
  /** The runbook's Test & Enable step: some mailboxes failed (details.testReport). */
  | 'TEST_ENABLE_FAILED'
  | 'INTERNAL';

export interface SetupErrorOptions {
  hint?: string;
  retryable?: boolean;
  cause?: unknown;
  /** Extra structured facts for logs (never secrets). */
  details?: Record<string, unknown>;
}

export class SetupError extends Error {
  readonly code: SetupErrorCode;
  readonly hint: string | undefined;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: SetupErrorCode, message: string, options: SetupErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SetupError';
    this.code = code;
    this.hint = options.hint;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }
}

export function isSetupError(value: unknown): value is SetupError {
  return value instanceof SetupError;
}

/** Wraps anything thrown into a SetupError, keeping a SetupError as it is. */
export function toSetupError(value: unknown, fallback: SetupErrorCode = 'INTERNAL'): SetupError {
  if (value instanceof SetupError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new SetupError(fallback, message, { cause: value });
}

/** The text a person sees: what went wrong, then what to do. */
export function userMessage(error: unknown): string {
  const e = toSetupError(error);
  if (e.code === 'INTERNAL') {
    return 'Something went wrong inside the setup bot. The details are in its log; try again, and tell the bot\'s maintainers if it keeps happening.';
  }
  return e.hint ? `${e.message} ${e.hint}` : e.message;
}
