import { EmailRouterAccessApproval } from '../../../jobs/crm-values.ts';
import type { ApproveResult, PayloadOf } from '../../../jobs/job-types.ts';
import { assertWithinPlan } from './assert-within-plan.ts';
import { FailureGroups } from './failure-groups.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { readSelection } from './selection.ts';
import { patchInBatches, type PatchOutcome, type PatchTarget } from './patch-in-batches.ts';

/**
 * Approve Email: sets `emailrouteraccessapproval` to Approved on every selected mailbox that is not
 * approved yet, unless there are far more of them than the approved plan said (PLAN_CHANGED, before
 * any write). Idempotent: a second run finds them approved and writes nothing.
 */
export async function approveMailboxes(payload: PayloadOf<'approve'>, ctx: JobContext): Promise<ApproveResult> {
  const started = ctx.now();
  const rows = await readSelection(ctx.crm, payload.filter, (done) => ctx.report({ phase: 'reading', done, total: done }));
  const todo = rows.filter((r) => r.emailrouteraccessapproval !== EmailRouterAccessApproval.Approved);
  const alreadyApproved = rows.length - todo.length;
  assertWithinPlan(payload.plannedCount, todo.length);
  let done = 0;
  let approvedSoFar = 0;
  const progress = (failed: number) =>
    ctx.report({ phase: 'approving', done, total: todo.length, counts: { approved: approvedSoFar, failed, alreadyApproved } });
  progress(0);
  const { approved, failures } = await approveRows(ctx, todo, (outcome, failed) => {
    done += 1;
    if (outcome.ok) approvedSoFar += 1;
    progress(failed);
  });
  ctx.logger.info({ matched: rows.length, approved, alreadyApproved, failed: failures.total }, 'approve finished');
  return {
    type: 'approve',
    matched: rows.length,
    approved,
    alreadyApproved,
    failed: failures.total,
    failures: failures.toArray(),
    crmRequests: ctx.crm.requestCount,
    durationMs: Math.max(0, Math.round(ctx.now() - started)),
  };
}

/**
 * Approves the given rows (emailrouteraccessapproval = Approved through $batch), grouping the
 * failures by cause; `onOutcome` sees every mailbox's outcome with the failures so far. Shared by
 * the approve job and the runbook's approve-email step.
 */
export async function approveRows(
  ctx: JobContext,
  rows: readonly PatchTarget[],
  onOutcome: (outcome: PatchOutcome, failedSoFar: number) => void = () => undefined,
): Promise<{ approved: number; failures: FailureGroups }> {
  const failures = new FailureGroups();
  let approved = 0;
  await patchInBatches(
    ctx,
    rows,
    { emailrouteraccessapproval: EmailRouterAccessApproval.Approved },
    {
      onOutcome: (outcome) => {
        if (outcome.ok) approved += 1;
        else failures.add(outcome.target.emailaddress || outcome.target.mailboxid, outcome.error ?? 'failed');
        onOutcome(outcome, failures.total);
      },
    },
  );
  return { approved, failures };
}
