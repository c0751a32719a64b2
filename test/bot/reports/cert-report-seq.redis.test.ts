import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReportPublisher, reportSeqKey } from '../../../agent/runtime/report-publisher.ts';
import { reportQueueName } from '../../../jobs/deployment.ts';
import { EnvelopeSigner } from '../../../jobs/envelope-signer.ts';
import { attemptOfReportSeq, newRunId, verifyReport } from '../../../jobs/job-options.ts';
import { deletePrefixedKeys } from '../../support/delete-prefixed-keys.ts';

/** The agent's report seqs across the attempts of a resumed rotation (real Redis, unique prefix). */
let redis: Redis;
const prefix = `t-${randomUUID()}`;
const signer = new EnvelopeSigner({ key: 'test-signing-key-0123456789abcdef-0123456789' });

beforeAll(() => {
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

describe('report seqs of a resumed job', () => {
  it('attempt 2 numbers its reports above every report of attempt 1, even after the counter expired', async () => {
    const publisher = createReportPublisher({ redis, prefix, deployment: 'contoso', signer });
    const runId = newRunId();
    try {
      const a1 = [
        await publisher.publish({ runId, jobType: 'cert-rotate' }, { kind: 'started' }),
        await publisher.publish({ runId, jobType: 'cert-rotate', attempt: 1 }, { kind: 'failed', error: { code: 'POWERSHELL_FAILED', message: 'x' } }),
      ];
      expect(a1).toEqual([1, 2]);
      // The run waited halted for days: the agent's counters are gone.
      await redis.del(reportSeqKey(prefix, runId), reportSeqKey(prefix, runId, 2));
      const a2 = [
        await publisher.publish({ runId, jobType: 'cert-rotate', attempt: 2 }, { kind: 'started' }),
        await publisher.publish({ runId, jobType: 'cert-rotate', attempt: 2 }, { kind: 'progress', progress: { phase: 'step', done: 1, total: 9 } }),
      ];
      expect(Math.min(...a2)).toBeGreaterThan(Math.max(...a1));
      expect(a2[1]).toBeGreaterThan(a2[0]!);
      expect(a1.map(attemptOfReportSeq)).toEqual([1, 1]);
      expect(a2.map(attemptOfReportSeq)).toEqual([2, 2]);
      const a3 = await publisher.publish({ runId, jobType: 'cert-rotate', attempt: 3 }, { kind: 'started' });
      expect(attemptOfReportSeq(a3)).toBe(3);

      // Every report is its own queue job (no id collides with an earlier attempt's), signed with its seq.
      const q = new Queue(reportQueueName('contoso'), { connection: redis, prefix });
      const jobs = await q.getJobs(['waiting', 'delayed', 'completed', 'active']);
      await q.close();
      expect(jobs).toHaveLength(5);
      expect(jobs.map((j) => verifyReport(signer, j.data).seq).sort((x, y) => x - y)).toEqual([...a1, ...a2, a3]);
    } finally {
      await publisher.close();
    }
  });
});
