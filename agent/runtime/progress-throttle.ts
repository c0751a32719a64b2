import type { Progress } from '../../jobs/job-types.ts';

/**
 * Passes progress on at most once per `intervalMs` (the first one at once); updates in between
 * are dropped, since each one carries the full counts. The final result is reported separately.
 */
export function throttleProgress(sink: (progress: Progress) => void, intervalMs: number, now: () => number = Date.now): (progress: Progress) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (progress) => {
    const t = now();
    if (t - last < intervalMs) return;
    last = t;
    sink(progress);
  };
}
