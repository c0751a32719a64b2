import { SetupError } from '../../core/setup-error.ts';
import type { CertLock, CertLockOwner } from './change-lock.ts';
import type { ReadyCerts } from './cert-requirements.ts';
import type { JobContext } from './job-context.ts';

/** What the guard reads of a cert-rotate or cert-rollback payload. */
export interface CertChangePayload {
  type: CertLockOwner['type'];
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
export function assertTwoPersons(payload: Pick<CertChangePayload, 'type' | 'requestedBy' | 'approvedBy'>): void {
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
export async function runCertChange<T>(ctx: JobContext, certs: ReadyCerts, payload: CertChangePayload, fn: (guarded: JobContext) => Promise<T>): Promise<T> {
  assertTwoPersons(payload);
  ctx.logger.info(
    { runId: payload.runId, attempt: payload.attempt, requestedBy: payload.requestedBy, approvedBy: payload.approvedBy, ...(payload.resumedBy === undefined ? {} : { resumedBy: payload.resumedBy }) },
    payload.attempt > 1 ? 'certificate change resumed' : 'certificate change starting',
  );
  return withCertLock(ctx, certs.lock, payload, fn);
}

/**
 * Runs `fn` holding the deployment's certificate-change lock (busy: a retryable STEP_FAILED naming
 * the run that holds it; nothing ran), with a signal that also aborts when the lock is lost,
 * released at the end whatever happens. runCertChange adds the two-person rule; the runbook's
 * smaller scopes (profile, tenant, configure) take the lock alone, so they never run beside a
 * `run setup` or a rotation of the same deployment.
 */
export async function withCertLock<T>(
  ctx: JobContext,
  lock: CertLock,
  payload: Pick<CertChangePayload, 'type' | 'runId' | 'deployment' | 'attempt'>,
  fn: (guarded: JobContext) => Promise<T>,
): Promise<T> {
  const held = await lock.acquire(payload.deployment, { type: payload.type, runId: payload.runId, attempt: payload.attempt });
  const { signal, dispose } = eitherSignal(ctx.signal, held.signal);
  try {
    return await fn({ ...ctx, signal });
  } finally {
    dispose();
    await held.release();
  }
}

/** A signal that aborts (with its reason) when either one does; `dispose` removes the listeners. */
function eitherSignal(a: AbortSignal, b: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const first = [a, b].find((s) => s.aborted);
  if (first) {
    controller.abort(first.reason);
    return { signal: controller.signal, dispose: () => undefined };
  }
  const onA = () => controller.abort(a.reason);
  const onB = () => controller.abort(b.reason);
  a.addEventListener('abort', onA, { once: true });
  b.addEventListener('abort', onB, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      a.removeEventListener('abort', onA);
      b.removeEventListener('abort', onB);
    },
  };
}
