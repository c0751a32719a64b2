import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../../bot/runs/run-store.ts';
import { newRunId } from '../../../jobs/job-options.ts';
import { deletePrefixedKeys } from '../../support/delete-prefixed-keys.ts';
import { NEW_THUMBPRINT, OLD_THUMBPRINT, certPlanResult, rollbackStepsFailedAt, rotationSteps, rotationStepsFailedAt } from '../../support/cert-fixtures.ts';

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

describe('RunStore: whether a certificate run touched CRM\'s registration', () => {
  const approval = { approval: { decision: 'approved' as const, decidedBy: requester, decidedAt: '2030-01-01T00:00:00.000Z' } };

  async function approvedRotation(deployment: string) {
    const run = await store().create({ runId: newRunId(), deployment, kind: 'cert-rotate', state: 'planning', requester, conversation });
    await store().transition(run.runId, ['planning'], 'awaiting-approval', { plan: certPlanResult() });
    expect((await store().approveCert(run.runId, deployment, undefined, approval)).ok).toBe(true);
    return run;
  }

  it('is set with the steps that show register-crm running, done or failed, and stays set when later steps show it pending', async () => {
    const deployment = `d${randomUUID().slice(0, 8)}`;
    const run = await approvedRotation(deployment);
    // The plan's steps (all pending) do not set it.
    expect((await store().get(run.runId))?.registrationTouched).toBeUndefined();
    await store().transition(run.runId, ['approved'], 'halted', { steps: rotationStepsFailedAt('register-crm') });
    expect((await store().get(run.runId))?.registrationTouched).toBe(true);
    // Attempt 2 reports every step pending, then fails at validate: the flag stays.
    await store().resume(run.runId, 1);
    await store().relayProgress(run.runId, 1_000_001, { phase: 'step', done: 0, total: 9, steps: rotationSteps('pending') }, 0);
    await store().transition(run.runId, ['approved', 'running'], 'halted', { steps: rotationStepsFailedAt('validate') });
    const after = await store().get(run.runId);
    expect(after?.steps).toEqual(rotationStepsFailedAt('validate'));
    expect(after?.registrationTouched).toBe(true);
    // Abandon is refused in the compare-and-set; the key stays with the rotation.
    expect(await store().abandon(run.runId, deployment, { error: { code: 'ABANDONED', message: 'x' } })).toEqual({ ok: false, reason: 'registration-touched' });
    expect(await store().get(run.runId)).toMatchObject({ state: 'halted' });
    expect(await store().certActive(deployment)).toBe(run.runId);
  });

  it('a progress report showing register-crm running sets it (even one that is not posted); skipped does not', async () => {
    const run = await approvedRotation(`d${randomUUID().slice(0, 8)}`);
    const skipped = rotationSteps('pending').map((x) => (x.id === 'register-crm' ? { ...x, state: 'skipped' as const } : x));
    await store().relayProgress(run.runId, 1, { phase: 'step', done: 4, total: 9, steps: skipped }, 0);
    expect((await store().get(run.runId))?.registrationTouched).toBeUndefined();
    const running = rotationSteps('pending').map((x) => (x.id === 'register-crm' ? { ...x, state: 'running' as const } : x));
    // An older seq (not stored, not posted) still records what happened.
    expect((await store().relayProgress(run.runId, 0, { phase: 'step', done: 3, total: 9, steps: running }, 0)).action).toBe('stale');
    expect((await store().get(run.runId))?.registrationTouched).toBe(true);
  });

  it('abandon of an untouched halted rotation fails it and releases the key in one step; markRegistrationTouched is monotonic', async () => {
    const deployment = `d${randomUUID().slice(0, 8)}`;
    const run = await approvedRotation(deployment);
    await store().transition(run.runId, ['approved'], 'halted', { steps: rotationStepsFailedAt('import') });
    expect(await store().abandon(run.runId, deployment, { error: { code: 'ABANDONED', message: 'x' } })).toEqual({ ok: true, from: 'halted' });
    expect(await store().get(run.runId)).toMatchObject({ state: 'failed', error: { code: 'ABANDONED' } });
    expect(await store().certActive(deployment)).toBeUndefined();
    expect(await store().abandon(run.runId, deployment, {})).toEqual({ ok: false, reason: 'conflict', current: 'failed' });

    const other = await approvedRotation(deployment);
    await store().transition(other.runId, ['approved'], 'halted');
    expect(await store().markRegistrationTouched(other.runId)).toBe(true);
    await store().transition(other.runId, ['halted'], 'halted', { steps: rotationSteps('pending') });
    expect((await store().get(other.runId))?.registrationTouched).toBe(true);
    expect(await store().markRegistrationTouched(newRunId())).toBe(false);
  });

  it('a rollback that failed before its register-crm halts its rotation again with the key; one that touched it does not', async () => {
    const deployment = `d${randomUUID().slice(0, 8)}`;
    for (const [failedAt, halted] of [['validate-old', true], ['restart-services', false]] as const) {
      const rotation = await approvedRotation(deployment);
      await store().transition(rotation.runId, ['approved'], 'halted', { steps: rotationSteps('done') });
      const rollbackRunId = newRunId();
      expect((await store().requestRollback(rotation.runId, rollbackRunId, requester)).ok).toBe(true);
      await store().create({ runId: rollbackRunId, deployment, kind: 'cert-rollback', state: 'awaiting-approval', requester, conversation, parentRunId: rotation.runId, rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT } });
      expect((await store().approveCert(rollbackRunId, deployment, rotation.runId, approval)).ok).toBe(true);
      await store().transition(rollbackRunId, ['approved'], 'running');
      // Not from a state it is not in.
      expect(await store().rollbackFailed(rollbackRunId, rotation.runId, deployment, ['approved'], {})).toEqual({ ok: false, reason: 'conflict', current: 'running' });
      const outcome = await store().rollbackFailed(rollbackRunId, rotation.runId, deployment, ['approved', 'running'], { steps: rollbackStepsFailedAt(failedAt), error: { code: 'STEP_FAILED', message: 'x' } });
      expect(outcome).toEqual({ ok: true, from: 'running', rotationHalted: halted });
      expect((await store().get(rollbackRunId))?.state).toBe('failed');
      const back = await store().get(rotation.runId);
      if (halted) {
        expect(back).toMatchObject({ state: 'halted', failedRollbackRunId: rollbackRunId, registrationTouched: true });
        expect(back?.rollbackRunId).toBeUndefined();
        expect(await store().certActive(deployment)).toBe(rotation.runId);
        // The rotation can be given a new rollback (the note goes), or resumed.
        expect(await store().resume(rotation.runId, 1)).toEqual({ ok: true, attempt: 2 });
        expect((await store().get(rotation.runId))?.failedRollbackRunId).toBeUndefined();
        await store().transition(rotation.runId, ['approved'], 'succeeded', {}, { releaseCertActive: deployment });
      } else {
        expect(back).toMatchObject({ state: 'superseded', rollbackRunId });
        expect(await store().certActive(deployment)).toBeUndefined();
      }
    }
  });
});
