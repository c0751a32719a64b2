import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../../bot/runs/run-store.ts';
import { newRunId } from '../../../jobs/job-options.ts';

let redis: Redis;
const prefix = `t-${randomUUID()}`;
let t = 1_000_000;
const store = () => new RunStore({ redis, prefix, now: () => t });

beforeAll(() => {
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

async function newRun(state: 'planning' | 'running' = 'planning') {
  return store().create({
    runId: newRunId(),
    deployment: 'contoso',
    kind: 'approve',
    state,
    filter: { kind: 'pending' },
    requester: { aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'O' },
    conversation: { channelId: 'msteams', serviceUrl: 'http://127.0.0.1:1/', conversation: { id: 'c' }, bot: { id: 'b' } },
  });
}

describe('RunStore', () => {
  it('creates a run with a TTL and refuses to reuse a run id', async () => {
    const run = await newRun();
    expect(run.state).toBe('planning');
    expect(await redis.ttl(store().key(run.runId))).toBeGreaterThan(29 * 24 * 3600);
    await expect(store().create({ ...run, state: 'planning' })).rejects.toThrow(/already exists/);
  });

  it('moves a state once, even with concurrent attempts', async () => {
    const run = await newRun();
    await store().transition(run.runId, ['planning'], 'awaiting-approval', { plan: { type: 'plan', action: 'approve', matched: 1, toChange: 1, sample: [] }, expiresAt: t + 60_000 });
    const attempts = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store().transition(run.runId, ['awaiting-approval'], 'approved', { approval: { decision: 'approved', decidedBy: { aadObjectId: String(i), name: `n${i}` }, decidedAt: 'x' } }, { refuseIfExpired: true }),
      ),
    );
    expect(attempts.filter((a) => a.ok)).toHaveLength(1);
    expect(attempts.filter((a) => !a.ok && a.reason === 'conflict')).toHaveLength(9);
    const stored = await store().get(run.runId);
    expect(stored?.state).toBe('approved');
    expect(stored?.plan?.type === 'plan' ? stored.plan.sample : undefined).toEqual([]);
  });

  it('refuses an approval after expiry', async () => {
    const run = await newRun();
    await store().transition(run.runId, ['planning'], 'awaiting-approval', { expiresAt: t + 1000 });
    t += 1001;
    const out = await store().transition(run.runId, ['awaiting-approval'], 'approved', {}, { refuseIfExpired: true });
    expect(out).toEqual({ ok: false, reason: 'expired', current: 'awaiting-approval' });
  });

  it('coalesces progress: posts, waits within the interval, drops older seqs', async () => {
    const run = await newRun();
    await store().transition(run.runId, ['planning'], 'awaiting-approval');
    await store().transition(run.runId, ['awaiting-approval'], 'running');
    const p = (done: number) => ({ phase: 'approving' as const, done, total: 10 });
    expect(await store().relayProgress(run.runId, 1, p(1), 2000)).toMatchObject({ action: 'post', seq: 1 });
    t += 500;
    expect(await store().relayProgress(run.runId, 3, p(3), 2000)).toEqual({ action: 'wait', waitMs: 1500 });
    expect(await store().relayProgress(run.runId, 2, p(2), 2000)).toEqual({ action: 'wait', waitMs: 1500 });
    t += 1500;
    // The delayed seq 2 comes back first: it posts the newest progress (seq 3).
    expect(await store().relayProgress(run.runId, 2, p(2), 2000)).toEqual({ action: 'post', seq: 3, progress: p(3) });
    t += 5000;
    expect(await store().relayProgress(run.runId, 3, p(3), 2000)).toEqual({ action: 'stale' });
    await store().transition(run.runId, ['running'], 'succeeded');
    expect(await store().relayProgress(run.runId, 9, p(9), 2000)).toEqual({ action: 'stale' });
  });

  it('marks the final run card and the results card once each, separately', async () => {
    const run = await newRun();
    expect(await store().markResultsSent(run.runId, 4)).toBe(true);
    expect(await store().markResultsSent(run.runId, 4)).toBe(false);
    expect((await store().get(run.runId))?.finalPostedSeq).toBe(-1);
    expect(await store().markFinalPosted(run.runId, 4)).toBe(true);
    expect(await store().markFinalPosted(run.runId, 4)).toBe(false);
    expect(await store().get(run.runId)).toMatchObject({ finalPostedSeq: 4, resultsSentSeq: 4 });
  });

  it('creates a run once under concurrent creates, always with its TTL', async () => {
    const run = await newRun();
    await redis.del(store().key(run.runId));
    const attempts = await Promise.allSettled(Array.from({ length: 8 }, () => store().create({ ...run, state: 'planning' })));
    expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    expect(await redis.ttl(store().key(run.runId))).toBeGreaterThan(29 * 24 * 3600);
  });

  it('never recreates an expired run: patch, marks, transitions and progress are no-ops on a missing key', async () => {
    const run = await newRun();
    await redis.del(store().key(run.runId));
    expect(await store().patch(run.runId, { postFailure: '404 gone', cardActivityId: 'm1' })).toBe(false);
    expect(await store().markFinalPosted(run.runId, 3)).toBe(false);
    expect(await store().markResultsSent(run.runId, 3)).toBe(false);
    expect(await store().transition(run.runId, ['planning'], 'plan-failed')).toEqual({ ok: false, reason: 'missing' });
    expect(await store().relayProgress(run.runId, 1, undefined, 0)).toEqual({ action: 'missing' });
    expect(await redis.exists(store().key(run.runId))).toBe(0);
  });

  it('keeps the TTL when a run is patched or marked', async () => {
    const run = await newRun();
    await redis.expire(store().key(run.runId), 100);
    expect(await store().patch(run.runId, { cardActivityId: 'm1' })).toBe(true);
    await store().markFinalPosted(run.runId, 1);
    const ttl = await redis.ttl(store().key(run.runId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
    expect((await store().get(run.runId))?.cardActivityId).toBe('m1');
  });
});
