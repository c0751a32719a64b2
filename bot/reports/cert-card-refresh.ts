import type { Logger } from '../../core/logger.ts';
import type { BotServices } from '../bot-services.ts';
import { CARD_LOCK_TTL_MS } from '../bot-worker.ts';
import { currentCertCard } from '../cards/cert/cert-run-card.ts';

/** How long a refresh waits for the run's card lock before it leaves the card to its current writer. */
export const REFRESH_LOCK_WAIT_MS = 1_500;

/**
 * Updates the card of a certificate run other than the one being acted on (the rotation a rollback
 * belongs to: pending rollback recorded or cleared, superseded, halted again). Holds that run's card
 * lock like every card write; when another writer holds it longer than `waitMs`, that writer is
 * writing a newer card of the same run and this refresh is skipped (logged).
 */
export async function refreshCertCard(services: Pick<BotServices, 'runs' | 'poster'>, runId: string, log: Pick<Logger, 'info' | 'warn'>, waitMs = REFRESH_LOCK_WAIT_MS): Promise<void> {
  const { runs, poster } = services;
  const deadline = Date.now() + waitMs;
  let lock = await runs.acquireCardLock(runId, CARD_LOCK_TTL_MS);
  while (!lock && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    lock = await runs.acquireCardLock(runId, CARD_LOCK_TTL_MS);
  }
  if (!lock) {
    log.info({ refreshedRunId: runId }, 'the card is being written by someone else: not refreshed');
    return;
  }
  try {
    const run = await runs.get(runId);
    if (!run?.cardActivityId) return;
    const posted = await poster.updateCard(run.conversation, run.cardActivityId, currentCertCard(run));
    if (!posted.ok) log.warn({ refreshedRunId: runId, status: posted.status }, 'could not update the card');
  } finally {
    await runs.releaseCardLock(runId, lock);
  }
}
