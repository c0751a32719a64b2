import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { reportQueueName } from '../../jobs/deployment.ts';
import type { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { reportAddOptions, reportSeqFor, reportTtlMs, signReport } from '../../jobs/job-options.ts';
import type { JobType, ReportEvent } from '../../jobs/job-types.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

export interface ReportTarget {
  runId: string;
  jobType: JobType;
  /** The job's attempt (a resumed rotation is attempt 2, 3, …); absent: 1. */
  attempt?: number;
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

/** Redis key of a run's report counter (one per attempt of a resumed run). */
export function reportSeqKey(prefix: string, runId: string, attempt = 1): string {
  return redisKeys.reportSeq(prefix, runId, attempt);
}

/**
 * Signs reports and adds them to the deployment's reports queue. `seq` comes from a Redis INCR per
 * run and attempt, so a retried job or a second agent never reuses a number and the bot can drop
 * stale updates; a resumed attempt's seqs start above every seq of the earlier attempts
 * (reportSeqFor), even when the run waited halted longer than the counter is kept.
 */
export function createReportPublisher(options: ReportPublisherOptions): ReportPublisher {
  const queue = new Queue(reportQueueName(options.deployment), { connection: options.redis, prefix: options.prefix });
  const now = options.now ?? Date.now;
  return {
    async publish(target, event) {
      const attempt = target.attempt ?? 1;
      const key = reportSeqKey(options.prefix, target.runId, attempt);
      const [[incrError, n] = [null, null], [expireError] = [null]] =
        (await options.redis.multi().incr(key).pexpire(key, 2 * reportTtlMs).exec()) ?? [];
      if (incrError || expireError || typeof n !== 'number') throw incrError ?? expireError ?? new Error('report sequence unavailable');
      const seq = reportSeqFor(attempt, n);
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
