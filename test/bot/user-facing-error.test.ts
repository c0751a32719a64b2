import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { REDIS_UNAVAILABLE_MESSAGE, describeError, isRedisUnavailable, runErrorFromAgent } from '../../bot/user-facing-error.ts';
import { SetupError } from '../../core/setup-error.ts';

describe('describeError', () => {
  it('says what to do for a SetupError, and hides anything else', () => {
    expect(describeError(new SetupError('FILTER_INVALID', 'That filter is not valid.', { hint: 'Use pending.' }))).toBe('That filter is not valid. Use pending.');
    expect(describeError(new TypeError('x is undefined'))).toContain('Something went wrong inside the setup bot');
  });

  it('recognises what ioredis says when Redis is away, also as a cause', async () => {
    const redis = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => null });
    redis.on('error', () => undefined);
    const error: unknown = await redis.get('k').catch((e: unknown) => e);
    redis.disconnect();
    expect(isRedisUnavailable(error)).toBe(true);
    expect(describeError(error)).toBe(REDIS_UNAVAILABLE_MESSAGE);
    expect(describeError(new Error('enqueue failed', { cause: error }))).toBe(REDIS_UNAVAILABLE_MESSAGE);
    expect(isRedisUnavailable(new Error('Command timed out'))).toBe(true);
    expect(isRedisUnavailable(new Error('CRM said no'))).toBe(false);
  });
});

describe('runErrorFromAgent', () => {
  it('keeps a stable code with its hint, and turns an INTERNAL exception text into what to do', () => {
    expect(runErrorFromAgent({ code: 'CRM_AUTH_FAILED', message: 'CRM refused.', hint: 'Check CRM_USER.' }, 'run1')).toEqual({ code: 'CRM_AUTH_FAILED', message: 'CRM refused.', hint: 'Check CRM_USER.' });
    const internal = runErrorFromAgent({ code: 'INTERNAL', message: 'TypeError: boom at /opt/agent/x.ts:12' }, 'abc123defg');
    expect(JSON.stringify(internal)).not.toContain('TypeError');
    expect(internal.hint).toContain("agent's log (run abc123defg)");
    expect(runErrorFromAgent({ code: 'weird code', message: 'raw' }, 'r').code).toBe('INTERNAL');
  });
});
