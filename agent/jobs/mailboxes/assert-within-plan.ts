import { SetupError } from '../../../core/setup-error.ts';
import { exceedsPlan } from '../../../jobs/job-types.ts';

/**
 * The approved plan bounds the work: called after the selection is read and before any write, it
 * refuses (PLAN_CHANGED, not retryable) when the selection has grown well beyond what the approver
 * saw, so an approval of "12 mailboxes" can never turn into 5,000.
 */
export function assertWithinPlan(plannedCount: number, toChange: number): void {
  if (!exceedsPlan(plannedCount, toChange)) return;
  throw new SetupError('PLAN_CHANGED', `The selection now matches ${toChange} mailboxes; the approved plan said ${plannedCount}.`, {
    hint: 'Nothing was changed. Ask again for a fresh plan and approve that.',
    details: { plannedCount, toChange },
  });
}
