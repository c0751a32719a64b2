import { silentLogger } from '../../../core/logger.ts';
import type { Progress } from '../../../jobs/job-types.ts';
import type { CrmApi } from '../../../agent/adapters/crm/client.ts';
import type { HandlerSettings, JobContext } from '../../../agent/runtime/job-context.ts';

export interface TestContext extends JobContext {
  progress: Progress[];
  sleeps: number[];
  clock: { now: number };
}

/** A JobContext with a fake clock: sleep() advances it, so polling tests run instantly. */
export function testContext(crm: CrmApi, settings: Partial<HandlerSettings> = {}, onSleep?: (ms: number) => void): TestContext {
  const progress: Progress[] = [];
  const sleeps: number[] = [];
  const clock = { now: Date.parse('2025-07-01T10:00:00Z') };
  return {
    crm,
    settings: { CRM_BATCH_SIZE: 100, CRM_CONCURRENCY: 4, TEST_POLL_INTERVAL_MS: 10_000, TEST_TIMEOUT_MS: 60_000, PROGRESS_INTERVAL_MS: 0, ...settings },
    logger: silentLogger(),
    report: (p) => progress.push(p),
    now: () => clock.now,
    sleep: (ms) => {
      sleeps.push(ms);
      clock.now += ms;
      onSleep?.(ms);
      return Promise.resolve();
    },
    signal: new AbortController().signal,
    progress,
    sleeps,
    clock,
  };
}
