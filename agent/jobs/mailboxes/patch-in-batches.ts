import type { BatchRequest } from '../../adapters/crm/batch-multipart.ts';
import { chunk, forEachBounded } from './bounded-pool.ts';
import { readCrmError } from '../../adapters/crm/error.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { MAILBOX_SET } from './selection.ts';

export interface PatchTarget {
  mailboxid: string;
  emailaddress: string;
}

export interface PatchOutcome {
  target: PatchTarget;
  ok: boolean;
  /** For failures: CRM's error code and message, the text that classifies the cause. */
  error?: string;
}

/** Rounds a part answered with 5xx is sent again before it counts as failed. */
const MAX_PART_ROUNDS = 3;

/**
 * PATCHes `body` onto every target through $batch: CRM_BATCH_SIZE requests per batch, at most
 * CRM_CONCURRENCY batches in flight. Each PATCH is its own top-level part (not a change set) and the
 * batch asks for `odata.continue-on-error`, so one mailbox that fails does not roll back or stop the
 * others. Should a server stop at the first failing part anyway, the parts it did not answer are
 * sent again in a further batch; parts answered 5xx are retried up to MAX_PART_ROUNDS times. A batch
 * that fails as a whole (after the client's own retries) fails the job, which BullMQ retries; the
 * writes are idempotent.
 */
export async function patchInBatches(
  ctx: JobContext,
  targets: readonly PatchTarget[],
  body: Record<string, unknown>,
  hooks: { onOutcome?: (outcome: PatchOutcome) => void } = {},
): Promise<PatchOutcome[]> {
  const outcomes: PatchOutcome[] = [];
  const record = (outcome: PatchOutcome) => {
    outcomes.push(outcome);
    hooks.onOutcome?.(outcome);
  };
  await forEachBounded(chunk(targets, ctx.settings.CRM_BATCH_SIZE), ctx.settings.CRM_CONCURRENCY, async (batch) => {
    let pending = batch.map((target) => ({ target, rounds: 0 }));
    while (pending.length > 0) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const requests: BatchRequest[] = pending.map(({ target }) => ({
        method: 'PATCH',
        path: `${MAILBOX_SET}(${target.mailboxid})`,
        headers: { 'If-Match': '*' },
        body,
      }));
      const result = await ctx.crm.batch(requests, { continueOnError: true });
      const next: typeof pending = [];
      pending.forEach((item, i) => {
        const part = result.responses[i];
        if (!part) {
          // Not answered (the server stopped early): send again, unless nothing at all was answered.
          if (result.responses.length === 0) item.rounds += 1;
          if (item.rounds >= MAX_PART_ROUNDS) record({ target: item.target, ok: false, error: 'CRM did not answer this request in its $batch response.' });
          else next.push(item);
          return;
        }
        if (part.status >= 200 && part.status < 300) {
          record({ target: item.target, ok: true });
          return;
        }
        const info = readCrmError(part.body, part.status);
        const error = `${info.code ? `${info.code}: ` : ''}${info.message}`;
        if (part.status >= 500 && item.rounds + 1 < MAX_PART_ROUNDS) {
          next.push({ target: item.target, rounds: item.rounds + 1 });
          return;
        }
        record({ target: item.target, ok: false, error });
      });
      pending = next;
    }
  });
  return outcomes;
}
