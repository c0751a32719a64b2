import { SetupError } from '../../core/setup-error.ts';
import { withChangeLock, type ChangeLockOwner } from './change-lock.ts';
import type { ReadyCerts } from './cert-requirements.ts';
import type { JobContext } from './job-context.ts';

/** What the guard reads of a cert-rotate or cert-rollback payload. */
export interface GuardedChangePayload {
  type: ChangeLockOwner['type'];
  runId: string;
  deployment: string;
  requestedBy: string;
  approvedBy: string;
  attempt: number;
  resumedBy?: string | undefined;
}

const same = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * The two-person rule, on the agent too: a change approved by nobody or by the person who asked
 * for it is refused (TWO_PERSON_RULE, not retryable) before anything is read or changed. The bot
 * checks it for every click; this catches a bot bug or a job signed by a compromised bot process.
 */
export function assertTwoPersons(payload: Pick<GuardedChangePayload, 'type' | 'requestedBy' | 'approvedBy'>): void {
  const what = payload.type === 'cert-rotate' ? 'certificate rotation' : payload.type === 'setup-run' ? 'set-up run (it may change the S2S certificate)' : 'certificate rollback';
  if (payload.approvedBy.trim().length === 0 || same(payload.approvedBy, payload.requestedBy)) {
    throw new SetupError(
      'TWO_PERSON_RULE',
      `This ${what} was ${payload.approvedBy.trim().length === 0 ? 'not approved by anyone' : 'approved by the person who asked for it'}; the agent runs a certificate change only when a second person approved it. Nothing was changed.`,
      { hint: `Ask for the ${what.split(' (')[0] ?? what} again and have an approver other than yourself approve it.`, retryable: false },
    );
  }
}

/**
 * Runs a certificate change (`fn`: the steps) under the agent's guards: the two-person rule first,
 * then the deployment's certificate-change lock (one rotation or rollback at a time), released at
 * the end whatever happens. `fn` gets the job context with a signal that aborts when the agent
 * closes or when this job loses the lock: the next step does not start (StepRunner) and a running
 * PowerShell script is stopped; the job fails retryably and a later attempt checks every step again.
 */
export async function runGuardedChange<T>(ctx: JobContext, certs: ReadyCerts, payload: GuardedChangePayload, fn: (guarded: JobContext) => Promise<T>): Promise<T> {
  assertTwoPersons(payload);
  ctx.logger.info(
    { runId: payload.runId, attempt: payload.attempt, requestedBy: payload.requestedBy, approvedBy: payload.approvedBy, ...(payload.resumedBy === undefined ? {} : { resumedBy: payload.resumedBy }) },
    payload.attempt > 1 ? 'certificate change resumed' : 'certificate change starting',
  );
  return withChangeLock(ctx, certs.lock, payload, fn);
}
