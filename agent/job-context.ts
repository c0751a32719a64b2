import type { Logger } from '../core/logger.ts';
import type { Progress } from '../jobs/job-types.ts';
import type { AgentConfig } from './agent-config.ts';
import type { CrmApi } from './crm-client.ts';

/** The settings the job handlers read. */
export type HandlerSettings = Pick<
  AgentConfig,
  'CRM_BATCH_SIZE' | 'CRM_CONCURRENCY' | 'TEST_POLL_INTERVAL_MS' | 'TEST_TIMEOUT_MS' | 'PROGRESS_INTERVAL_MS'
>;

/** Everything a job handler gets: injected, so tests can drive a handler without Redis or BullMQ. */
export interface JobContext {
  /** A per-job scope of the CRM client (its requestCount is this job's). */
  crm: CrmApi;
  settings: HandlerSettings;
  logger: Logger;
  /** Progress sink; the caller throttles it (see progress-throttle.ts). */
  report: (progress: Progress) => void;
  now: () => number;
  /** Waits, or rejects when `signal` aborts (the agent is closing). */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
}
