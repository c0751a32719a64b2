import type { StepHandle } from './runner.ts';
import type { RunbookEnv } from './step.ts';

/** The most a step's detail may hold (runbookStepPlanSchema, stepStateSchema). */
export const MAX_DETAIL = 300;

/** A step's detail, one line, at most MAX_DETAIL characters. */
export function stepDetail(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL - 1)}…` : line;
}

/** "1 mailbox", "540 mailboxes". */
export function mailboxes(n: number): string {
  return `${n} ${n === 1 ? 'mailbox' : 'mailboxes'}`;
}

/**
 * A step's running detail at most once per PROGRESS_INTERVAL_MS (and always when `force`: the
 * first and the last word), so a step over thousands of mailboxes does not flood the run card.
 */
export function throttledUpdate(env: RunbookEnv, step: Pick<StepHandle, 'update'>): (detail: string, force?: boolean) => void {
  let last = -Infinity;
  return (detail, force = false) => {
    const now = env.ctx.now();
    if (!force && now - last < env.ctx.settings.PROGRESS_INTERVAL_MS) return;
    last = now;
    step.update(stepDetail(detail));
  };
}
