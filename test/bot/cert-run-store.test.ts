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

describe('RunStore: one certificate change at a time', () => {
  const approval = { approval: { decision: 'approved' as const, decidedBy: requester, decidedAt: '2030-01-01T00:00:00.000Z' } };

  async function awaiting(deployment: string) {
    const run = await store().create({ runId: newRunId(), deployment, kind: 'cert-rotate', state: 'planning', requester, conversation });
    await store().transition(run.runId, ['planning'], 'awaiting-approval', { plan: certPlanResult() });
    return run;
  }

  it('of ten plans approved at once exactly one is approved; the others are told which run holds the deployment', async () => {
    const deployment = `d${randomUUID().slice(0, 8)}`;
    const runs = await Promise.all(Array.from({ length: 10 }, () => awaiting(deployment)));
    const outcomes = await Promise.all(runs.map((r) => store().approveCert(r.runId, deployment, undefined, approval)));
    const winners = outcomes.filter((o) => o.ok);
    expect(winners).toHaveLength(1);
    const holder = await store().certActive(deployment);
    expect(runs.map((r) => r.runId)).toContain(holder);
    for (const o of outcomes.filter((x) => !x.ok)) expect(o).toEqual({ ok: false, reason: 'busy', holder, holderState: 'approved' });
    expect(await redis.ttl(store().certActiveKey(deployment))).toBeGreaterThan(29 * 24 * 3600);
  });

  it('a holder whose run is final (or gone) is stale: the next approval takes over; a final transition releases the key', async () => {
    const deployment = `d${randomUUID().slice(0, 8)}`;
    const first = await awaiting(deployment);
    expect((await store().approveCert(first.runId, deployment, undefined, approval)).ok).toBe(true);
    // Made final without releasing (as an older bot would): not in progress any more.
    await store().transition(first.runId, ['approved'], 'failed');
    const second = await awaiting(deployment);
    expect((await store().approveCert(second.runId, deployment, undefined, approval)).ok).toBe(true);
    expect(await store().certActive(deployment)).toBe(second.runId);
    await redis.set(store().certActiveKey(deployment), 'gonerun001');
    const third = await awaiting(deployment);
    expect((await store().approveCert(third.runId, deployment, undefined, approval)).ok).toBe(true);
    await store().transition(third.runId, ['approved'], 'succeeded', {}, { releaseCertActive: deployment });
    expect(await store().certActive(deployment)).toBeUndefined();
  });

  it('a rollback pending on a halted rotation; its approval supersedes the rotation and takes the key; resume is refused meanwhile', async () => {
    const deployment = `d${randomUUID().slice(0, 8)}`;
    const rotation = await awaiting(deployment);
    await store().approveCert(rotation.runId, deployment, undefined, approval);
    await store().transition(rotation.runId, ['approved'], 'halted', { result: { type: 'cert-rotate', outcome: 'verification-failed', newThumbprint: NEW_THUMBPRINT, oldThumbprint: OLD_THUMBPRINT, steps: rotationSteps('done'), verification: null, durationMs: 1 }, error: { code: 'X', message: 'attempt 1' } });
    const rollbackRunId = newRunId();
    const asks = await Promise.all([store().requestRollback(rotation.runId, rollbackRunId, requester), store().requestRollback(rotation.runId, newRunId(), requester)]);
    expect(asks.filter((a) => a.ok)).toHaveLength(1);
    const pendingId = (await store().get(rotation.runId))?.rollbackRunId ?? '';
    expect(await store().resume(rotation.runId, 1)).toEqual({ ok: false, reason: 'rollback-pending', rollbackRunId: pendingId });
    const rollback = await store().create({ runId: pendingId, deployment, kind: 'cert-rollback', state: 'awaiting-approval', requester, conversation, parentRunId: rotation.runId, rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT } });
    expect(await store().approveCert(rollback.runId, deployment, rotation.runId, approval)).toEqual({ ok: true, from: 'awaiting-approval' });
    expect(await store().get(rotation.runId)).toMatchObject({ state: 'superseded', supersededBy: requester, rollbackRunId: pendingId });
    expect(await store().certActive(deployment)).toBe(rollback.runId);
    // Never started: the rollback fails, the rotation is halted again (no pending rollback) and holds the key.
    expect((await store().rollbackNotStarted(rollback.runId, rotation.runId, deployment, { error: { code: 'JOB_NOT_STARTED', message: 'x' } })).ok).toBe(true);
    const back = await store().get(rotation.runId);
    expect(back).toMatchObject({ state: 'halted' });
    expect(back?.rollbackRunId).toBeUndefined();
    expect(await store().certActive(deployment)).toBe(rotation.runId);
    // Resume now works and clears attempt 1's result and error.
    expect(await store().resume(rotation.runId, 1)).toEqual({ ok: true, attempt: 2 });
    const resumed = await store().get(rotation.runId);
    expect(resumed?.result).toBeUndefined();
    expect(resumed?.error).toBeUndefined();
  });
});
