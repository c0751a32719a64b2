import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { jobQueueName } from '../../jobs/deployment.ts';
import { attemptOf, jobAddOptions, jobIdFor, signJob } from '../../jobs/job-options.ts';
import type { JobPayload } from '../../jobs/job-types.ts';

/**
 * Puts signed jobs on the deployment's job queue. The job id is deterministic (`<runId>-<type>`),
 * so adding the same job twice (a replayed click, two bot instances) is a no-op in BullMQ.
 * Job data is the signed envelope: run ids, filters and Entra object ids, never a secret.
 */
export interface JobDispatcher {
  dispatch(payload: JobPayload): Promise<{ jobId: string }>;
  close(): Promise<void>;
}

export interface BullJobDispatcherOptions {
  connection: Redis;
  prefix: string;
  deployment: string;
  signer: EnvelopeSigner;
}

export class BullJobDispatcher implements JobDispatcher {
  readonly #queue: Queue;
  readonly #signer: EnvelopeSigner;

  constructor(options: BullJobDispatcherOptions) {
    this.#queue = new Queue(jobQueueName(options.deployment), { connection: options.connection, prefix: options.prefix });
    this.#signer = options.signer;
  }

  async dispatch(payload: JobPayload): Promise<{ jobId: string }> {
    const envelope = signJob(this.#signer, payload);
    const attempt = attemptOf(payload);
    const options = jobAddOptions(payload.runId, payload.type, attempt);
    const job = await this.#queue.add(payload.type, envelope, options);
    return { jobId: job.id ?? jobIdFor(payload.runId, payload.type, attempt) };
  }

  async close(): Promise<void> {
    await this.#queue.close();
  }
}
