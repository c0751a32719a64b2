import { approveRows } from '../../jobs/mailboxes/approve.ts';
import type { StepHandle } from '../runner.ts';
import type { RunbookEnv, RunbookStep, StepCheck } from '../step.ts';
import { mailboxes, stepDetail, throttledUpdate } from '../detail.ts';
import { readConfiguredSelection, needsApproval, mailboxFailure, readBack } from './mailboxes.ts';

async function checkApprove(env: RunbookEnv): Promise<StepCheck> {
  const rows = await readConfiguredSelection(env);
  const todo = rows.filter(needsApproval).length;
  if (rows.length === 0) return { upToDate: true, detail: 'already done: no mailboxes match the selection' };
  if (todo === 0) return { upToDate: true, detail: stepDetail(`already done: all ${mailboxes(rows.length)} approved`) };
  return { upToDate: false, detail: stepDetail(`would approve ${todo} of ${mailboxes(rows.length)}`) };
}

async function applyApprove(env: RunbookEnv, step: StepHandle) {
  const update = throttledUpdate(env, step);
  const rows = await readConfiguredSelection(env, (n) => update(`reading the selection: ${mailboxes(n)}`));
  const todo = rows.filter(needsApproval);
  if (todo.length === 0) {
    return { detail: stepDetail(rows.length === 0 ? 'already done: no mailboxes match the selection' : `already done: all ${mailboxes(rows.length)} approved`), wrote: false, changed: false };
  }
  const approvedIds = new Set<string>();
  let done = 0;
  update(`approving 0 of ${mailboxes(todo.length)}`, true);
  const { failures } = await approveRows(env.ctx, todo, (outcome, failed) => {
    done += 1;
    if (outcome.ok) approvedIds.add(outcome.target.mailboxid);
    update(`approved ${approvedIds.size} of ${mailboxes(todo.length)}${failed > 0 ? `, ${failed} failed` : ''}`, done === todo.length);
  });
  await readBack(env, approvedIds, needsApproval, 'approved');
  env.ctx.logger.info({ selected: rows.length, approved: approvedIds.size, failed: failures.total }, 'mailboxes approved');
  if (failures.total > 0) {
    throw mailboxFailure('STEP_FAILED', { failed: failures.total, of: todo.length, verb: 'could not be approved', extra: `${approvedIds.size} were approved` }, failures.toArray(), {
      failures: failures.toArray(),
      approved: approvedIds.size,
    });
  }
  return { detail: stepDetail(`approved ${approvedIds.size} of ${mailboxes(rows.length)}`), wrote: true, changed: false };
}

/** approve-email (procedure.md §6). */
export const approveEmailStep: RunbookStep = { id: 'approve-email', check: checkApprove, apply: applyApprove };
