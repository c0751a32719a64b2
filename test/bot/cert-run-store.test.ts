import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../bot/run-store.ts';
import { newRunId } from '../../jobs/job-options.ts';
import { deletePrefixedKeys } from '../support/delete-prefixed-keys.ts';
import { NEW_THUMBPRINT, OLD_THUMBPRINT, certPlanResult, rotationSteps } from '../support/cert-fixtures.ts';

let redis: Redis;
const prefix = `t-${randomUUID()}`;
const store = () => new RunStore({ redis, prefix, now: () => 1_000_000 });
const requester = { aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'O' };
const conversation = { channelId: 'msteams', serviceUrl: 'http://127.0.0.1:1/', conversation: { id: 'c' }, bot: { id: 'b' } };

beforeAll(() => {
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

async function haltedRotation() {
  const run = await store().create({ runId: newRunId(), deployment: 'contoso', kind: 'cert-rotate', state: 'planning', requester, conversation, certFile: 's2s-new.pfx' });
  await store().transition(run.runId, ['planning'], 'awaiting-approval', { plan: certPlanResult() });
  await store().transition(run.runId, ['awaiting-approval'], 'approved');
  await store().transition(run.runId, ['approved'], 'halted', { steps: rotationSteps('done') });
  return run;
}

describe('RunStore: certificate runs', () => {
  it('keeps a rotation plan, the file, the steps and attempt 1', async () => {
    const run = await haltedRotation();
    const stored = await store().get(run.runId);
    expect(stored).toMatchObject({ kind: 'cert-rotate', state: 'halted', attempt: 1, certFile: 's2s-new.pfx', steps: rotationSteps('done') });
    expect(stored?.plan?.type === 'cert-plan' ? stored.plan.next.thumbprint : undefined).toBe(NEW_THUMBPRINT);
  });

  it('resume moves halted → approved and raises the attempt once under concurrent clicks', async () => {
    const run = await haltedRotation();
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => store().resume(run.runId, 1, { resumedBy: requester })));
    expect(outcomes.filter((o) => o.ok)).toEqual([{ ok: true, attempt: 2 }]);
    expect(outcomes.filter((o) => !o.ok).every((o) => !o.ok && o.reason === 'conflict')).toBe(true);
    expect(await store().get(run.runId)).toMatchObject({ state: 'approved', attempt: 2, resumedBy: requester });
  });

  it('refuses a resume checked against an older attempt, and a run that is not halted', async () => {
    const run = await haltedRotation();
    expect(await store().resume(run.runId, 1)).toEqual({ ok: true, attempt: 2 });
    await store().transition(run.runId, ['approved'], 'halted');
    // The clicker saw attempt 1; the run is halted again at attempt 2: refused, nothing changes.
    expect(await store().resume(run.runId, 1)).toEqual({ ok: false, reason: 'attempt-changed', attempt: 2 });
    expect(await store().get(run.runId)).toMatchObject({ state: 'halted', attempt: 2 });
    await store().transition(run.runId, ['halted'], 'superseded');
    expect(await store().resume(run.runId, 2)).toEqual({ ok: false, reason: 'conflict', current: 'superseded' });
    expect(await store().resume(newRunId(), 1)).toEqual({ ok: false, reason: 'missing' });
  });

  it('creates a rollback run awaiting approval with its parent, certificates and expiry', async () => {
    const parent = await haltedRotation();
    const run = await store().create({
      runId: newRunId(),
      deployment: 'contoso',
      kind: 'cert-rollback',
      state: 'awaiting-approval',
      requester,
      conversation,
      plan: certPlanResult(),
      parentRunId: parent.runId,
      rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT },
      expiresAtMs: 2_000_000,
    });
    expect(run).toMatchObject({ kind: 'cert-rollback', state: 'awaiting-approval', parentRunId: parent.runId, rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT }, attempt: 1 });
    expect(run.expiresAt).toBe(new Date(2_000_000).toISOString());
    // The expiry is enforced like a plan's.
    const late = new RunStore({ redis, prefix, now: () => 2_000_001 });
    expect(await late.transition(run.runId, ['awaiting-approval'], 'approved', {}, { refuseIfExpired: true })).toEqual({ ok: false, reason: 'expired', current: 'awaiting-approval' });
  });

  it('records the steps of progress reports', async () => {
    const run = await haltedRotation();
    await store().resume(run.runId, 1);
    const steps = rotationSteps('skipped');
    const decision = await store().relayProgress(run.runId, 1_000_001, { phase: 'step', done: 3, total: 9, steps }, 0);
    expect(decision.action).toBe('post');
    expect((await store().get(run.runId))?.steps).toEqual(steps);
  });
});
