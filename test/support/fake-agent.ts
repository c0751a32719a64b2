import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { jobQueueName, reportQueueName } from '../../jobs/deployment.ts';
import { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { reportAddOptions, reportSeqFor, signReport, verifyJob } from '../../jobs/job-options.ts';
import type { JobPayload, JobType, ReportEvent } from '../../jobs/job-types.ts';

/**
 * Plays the on-premises agent in bot tests: takes jobs from the job queue with a BullMQ worker,
 * checks each with `verifyJob`, and publishes signed reports to the reports queue. Reports of a
 * resumed job (attempt n) are numbered like the agent's publisher does (reportSeqFor), from a
 * counter of their own that starts again at 1 for each attempt.
 */
export interface FakeAgentOptions {
  connection: Redis;
  prefix: string;
  deployment: string;
  signingKey: string;
}

export class FakeAgent {
  readonly jobs: JobPayload[] = [];
  readonly rejected: string[] = [];
  readonly #signer: EnvelopeSigner;
  readonly #worker: Worker;
  readonly #reports: Queue;
  readonly #deployment: string;
  readonly #seq = new Map<string, number>();

  constructor(options: FakeAgentOptions) {
    this.#signer = new EnvelopeSigner({ key: options.signingKey });
    this.#deployment = options.deployment;
    this.#worker = new Worker(
      jobQueueName(options.deployment),
      (job) => {
        try {
          this.jobs.push(verifyJob(this.#signer, job.data));
          return Promise.resolve();
        } catch (error) {
          this.rejected.push(error instanceof Error ? error.message : String(error));
          return Promise.reject(error instanceof Error ? error : new Error(String(error)));
        }
      },
      { connection: options.connection, prefix: options.prefix, concurrency: 4 },
    );
    this.#reports = new Queue(reportQueueName(options.deployment), { connection: options.connection, prefix: options.prefix });
  }

  get reportQueue(): Queue {
    return this.#reports;
  }

  async ready(): Promise<void> {
    await this.#worker.waitUntilReady();
  }

  async waitForJob<T extends JobType>(type: T, runId?: string, timeoutMs = 10_000): Promise<Extract<JobPayload, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.jobs.find((j) => j.type === type && (runId === undefined || j.runId === runId));
      if (found) return found as Extract<JobPayload, { type: T }>;
      if (Date.now() > deadline) throw new Error(`timed out waiting for a ${type} job`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  jobsOf(type: JobType, runId?: string): JobPayload[] {
    return this.jobs.filter((j) => j.type === type && (runId === undefined || j.runId === runId));
  }

  /** Publishes a signed report with the run's (and attempt's) next seq; returns the report job id. */
  async report(runId: string, jobType: JobType, event: ReportEvent, attempt = 1): Promise<string> {
    const counter = attempt > 1 ? `${runId}:a${attempt}` : runId;
    const n = (this.#seq.get(counter) ?? 0) + 1;
    this.#seq.set(counter, n);
    const seq = reportSeqFor(attempt, n);
    const envelope = signReport(this.#signer, { runId, deployment: this.#deployment, jobType, seq, at: new Date().toISOString(), event });
    const options = reportAddOptions(runId, seq);
    await this.#reports.add(event.kind, envelope, options);
    return options.jobId ?? '';
  }

  async close(): Promise<void> {
    await this.#worker.close();
    await this.#reports.close();
  }
}
