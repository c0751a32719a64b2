import { describe, expect, it } from 'vitest';
import { redisKeys } from '../../jobs/redis-keys.ts';

/**
 * The key strings are stored data: a run, a journal, a lock or an audit stream written by an older
 * bot or agent must still be found. Each is spelled out here once, so a change to one fails.
 */
describe('redisKeys', () => {
  it('builds every key as it was stored before the keys moved into one place', () => {
    const p = 'setup';
    const run = 'r0123456789a';
    expect(redisKeys.run(p, run)).toBe('setup:run:r0123456789a');
    expect(redisKeys.runIndex(p, 'prod')).toBe('setup:runs:prod');
    expect(redisKeys.cancel(p, run)).toBe('setup:cancel:r0123456789a');
    expect(redisKeys.certActive(p, 'prod')).toBe('setup:cert-active:prod');
    expect(redisKeys.cardLock(p, run)).toBe('setup:run-lock:r0123456789a');
    expect(redisKeys.jobSeen(p, `${run}-setup-run-a2`)).toBe('setup:job-seen:r0123456789a-setup-run-a2');
    expect(redisKeys.jobResult(p, run, 'test')).toBe('setup:job-result:r0123456789a-test');
    expect(redisKeys.reportSeq(p, run, 1)).toBe('setup:report-seq:r0123456789a');
    expect(redisKeys.reportSeq(p, run, 3)).toBe('setup:report-seq:r0123456789a:a3');
    expect(redisKeys.stepJournal(p, run)).toBe('setup:cert-steps:r0123456789a');
    expect(redisKeys.changeLock(p, 'prod')).toBe('setup:cert-lock:prod');
    expect(redisKeys.agentHeartbeat(p, 'prod')).toBe('setup:agent-heartbeat:prod');
    expect(redisKeys.audit(p, 'prod')).toBe('setup:audit:prod');
    expect(redisKeys.certWatchConversation(p, 'prod')).toBe('setup:cert-watch:prod:conversation');
    expect(redisKeys.certWatchThreshold(p, 'prod', 'AB12', 14)).toBe('setup:cert-watch:prod:AB12:14');
    expect(redisKeys.certWatchDaily(p, 'prod', null, 'expired', '2026-12-08')).toBe('setup:cert-watch:prod:none:expired:2026-12-08');
    expect(redisKeys.certWatchFailures(p, 'prod')).toBe('setup:cert-watch:prod:failures');
    expect(redisKeys.certWatchCannotCheck(p, 'prod', '2026-12-08')).toBe('setup:cert-watch:prod:cannot-check:2026-12-08');
    expect(redisKeys.certWatchStart(p, run)).toBe('setup:cert-watch-start:r0123456789a');
    expect(redisKeys.primaryOrgStart(p, run)).toBe('setup:primary-org-start:r0123456789a');
  });
});
