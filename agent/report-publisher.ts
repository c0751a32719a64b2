import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { reportQueueName } from '../jobs/deployment.ts';
import type { EnvelopeSigner } from '../jobs/envelope-signer.ts';
import { reportAddOptions, reportTtlMs, signReport } from '../jobs/job-options.ts';
import type { JobType, ReportEvent } from '../jobs/job-types.ts';

export interface ReportTarget {
  runId: string;
  jobType: JobType;
}

export interface ReportPublisher {
  publish(target: ReportTarget, event: ReportEvent): Promise<number>;
  close(): Promise<void>;
}

export interface ReportPublisherOptions {
  redis: Redis;
  prefix: string;
  deployment: string;
  signer: EnvelopeSigner;
  now?: () => number;
}

/** Redis key of a run's report counter. */
export function reportSeqKey(prefix: string, runId: string): string {
  return `${prefix}:report-seq:${runId}`;
}

/**
 * Signs reports and adds them to the deployment's reports queue. `seq` comes from a Redis INCR per
 * run, so a retried job or a second agent never reuses a number and the bot can drop stale updates.
 */
export function createReportPublisher(options: ReportPublisherOptions): ReportPublisher {
  const queue = new Queue(reportQueueName(options.deployment), { connection: options.redis, prefix: options.prefix });
  const now = options.now ?? Date.now;
  return {
    async publish(target, event) {
      const key = reportSeqKey(options.prefix, target.runId);
      const [[incrError, seq] = [null, null], [expireError] = [null]] =
        (await options.redis.multi().incr(key).pexpire(key, 2 * reportTtlMs).exec()) ?? [];
      if (incrError || expireError || typeof seq !== 'number') throw incrError ?? expireError ?? new Error('report sequence unavailable');
      const envelope = signReport(options.signer, {
        runId: target.runId,
        deployment: options.deployment,
        jobType: target.jobType,
        seq,
        at: new Date(now()).toISOString(),
        event,
      });
      await queue.add(event.kind, envelope, reportAddOptions(target.runId, seq));
      return seq;
    },
    async close() {
      await queue.close();
    },
  };
}
