import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepJournalKey as certStepsKey, createStepJournal, type StepJournal } from '../../../agent/steps/journal.ts';
import { StepRunner } from '../../../agent/steps/runner.ts';
import type { AuditAppend } from '../../../agent/runtime/job-context.ts';
import { CERT_JOURNAL_TTL_MS } from '../../../agent/runtime/cert-services.ts';
import { RESTART_TRIGGERS } from '../../../agent/steps/table.ts';
import { RUN_TTL_SECONDS } from '../../../jobs/runbook-types.ts';
import { createAuditLog } from '../../../core/audit-log.ts';
import { connectRedis } from '../../../core/redis-connection.ts';
import { SetupError } from '../../../core/setup-error.ts';
import type { StepId } from '../../../jobs/cert-types.ts';
import { deletePrefixedKeys } from '../../support/delete-prefixed-keys.ts';
import { fakeMailCrm } from '../support/fake-mail-crm.ts';
import { testContext, type TestContext } from '../support/job-context.ts';

/**
 * The step runner as the runbook uses it, with fake steps: order, halt with the known remediation,
 * resume skipping done steps (preflight always again), cancellation before the next step, the
 * `changed` (wrote) list apart from the restart flag, restart-services owed only after a change,
 * and one audit entry per step.
 */
let redis: Redis;
const prefix = `t-${randomUUID()}`;
let journal: StepJournal;

beforeAll(async () => {
  redis = await connectRedis('redis://127.0.0.1:6379');
  journal = createStepJournal({ redis, prefix, signingKey: 'test-signing-key-0123456789-abcdefghij', ttlMs: 60_000 });
});

afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

const IDS: readonly StepId[] = ['preflight', 'tenant-id', 'restart-services', 'email-profile', 'org-defaults'];
const newRunId = () => randomUUID().replace(/-/g, '').slice(0, 12);

interface World {
  ctx: TestContext;
  calls: StepId[];
  audit: AuditAppend[];
  cancelled: { value: boolean };
}

function world(): World {
  const calls: StepId[] = [];
  const audit: AuditAppend[] = [];
  const cancelled = { value: false };
  const ctx = testContext(fakeMailCrm(1, () => ({ ok: true }), Date.now).crm);
  ctx.deployment = 'contoso-prod';
  ctx.audit = (entry) => {
    audit.push(entry);
    return Promise.resolve();
  };
  ctx.isCancelled = () => Promise.resolve(cancelled.value);
  return { ctx, calls, audit, cancelled };
}

type Behaviour = Partial<Record<StepId, () => { detail: string; changed?: boolean; wrote?: boolean }>>;

/** Runs IDS with fake steps; restart-services restarts only when owed (as the runbook's does). */
async function runAll(w: World, runId: string, attempt: number, behaviour: Behaviour): Promise<StepRunner> {
  const runner = await StepRunner.start(w.ctx, journal, runId, attempt, IDS, { restartTriggers: RESTART_TRIGGERS });
  for (const id of IDS) {
    await runner.run(id, () => {
      w.calls.push(id);
      if (id === 'restart-services') {
        return Promise.resolve(runner.restartOwed() ? { detail: 'restarted', wrote: true } : { detail: 'not needed', wrote: false });
      }
      const fn = behaviour[id];
      return Promise.resolve(fn ? fn() : { detail: `${id} already done`, wrote: false });
    });
  }
  return runner;
}

async function failure(p: Promise<unknown>): Promise<SetupError> {
  try {
    await p;
  } catch (error) {
    if (error instanceof SetupError) return error;
    throw error;
  }
  throw new Error('expected a SetupError');
}

describe('the runbook step runner', () => {
  it('runs the steps in order and lists the steps that wrote, apart from the restart flag', async () => {
    const w = world();
    const runner = await runAll(w, newRunId(), 1, {
      'tenant-id': () => ({ detail: 'set S2STenantId', changed: true, wrote: true }),
      'email-profile': () => ({ detail: 'created the profile', wrote: true }),
    });
    expect(w.calls).toEqual(IDS);
    expect(runner.snapshot().map((s) => s.state)).toEqual(['done', 'done', 'done', 'done', 'done']);
    // restart-services wrote because tenant-id changed something the services read; org-defaults found nothing to do.
    expect(runner.wroteSteps()).toEqual(['tenant-id', 'restart-services', 'email-profile']);
    const last = w.ctx.progress.at(-1);
    expect(last?.phase).toBe('step');
    expect(last?.done).toBe(IDS.length);
  });

  it('does not owe a restart when nothing the services read changed (a second run changes nothing)', async () => {
    const w = world();
    const runner = await runAll(w, newRunId(), 1, {});
    expect(runner.wroteSteps()).toEqual([]);
    expect(runner.snapshot().find((s) => s.id === 'restart-services')?.detail).toBe('not needed');
  });

  it('halts on a failed step with its title and the known remediation, and a resume skips the steps done', async () => {
    const w = world();
    const runId = newRunId();
    const error = await failure(
      runAll(w, runId, 1, {
        'tenant-id': () => ({ detail: 'set', changed: true, wrote: true }),
        'email-profile': () => {
          throw new SetupError('CRM_REQUEST_FAILED', 'Crm.80048306 insufficient permissions on emailserverprofile');
        },
      }),
    );
    expect(error.code).toBe('CRM_REQUEST_FAILED');
    expect(error.message).toMatch(/^Step 'Email server profile, Exchange Online \(Hybrid\)' failed: Crm\.80048306/);
    expect(error.hint).toMatch(/Mailbox privileges/);
    const steps = error.details?.['steps'] as { id: string; state: string }[];
    expect(steps.map((s) => s.state)).toEqual(['done', 'done', 'done', 'failed', 'pending']);
    expect(w.calls).toEqual(['preflight', 'tenant-id', 'restart-services', 'email-profile']);

    // Attempt 2: preflight runs again (a check), the done steps are skipped, the failed one runs.
    const again = world();
    const runner = await runAll(again, runId, 2, { 'email-profile': () => ({ detail: 'created the profile', wrote: true }) });
    expect(again.calls).toEqual(['preflight', 'email-profile', 'org-defaults']);
    expect(runner.snapshot().find((s) => s.id === 'tenant-id')?.detail).toBe('set (earlier attempt)');
    // The changed list covers every attempt.
    expect(runner.wroteSteps()).toEqual(['tenant-id', 'restart-services', 'email-profile']);
    expect(await redis.exists(certStepsKey(prefix, runId))).toBe(1);
  });

  it('restarts the services again on a resume when a step changed something after the restart', async () => {
    const w = world();
    const runId = newRunId();
    await failure(
      runAll(w, runId, 1, {
        'org-defaults': () => {
          throw new SetupError('STEP_FAILED', 'boom');
        },
      }),
    );
    // A step recorded after restart-services that needs a restart (here: tenant-id re-recorded by hand).
    await journal.record(runId, 'tenant-id', { state: 'done', detail: 'set again', changed: true, wrote: true, attempt: 1 });
    const again = world();
    await runAll(again, runId, 2, {});
    expect(again.calls).toEqual(['preflight', 'restart-services', 'org-defaults']);
  });

  it('owes the restart when an earlier attempt stopped inside a trigger step after its change, not when the step finished', async () => {
    const w = world();
    const runId = newRunId();
    // Attempt 1: tenant-id makes its change, then fails before it is journaled as done.
    await failure(
      runAll(w, runId, 1, {
        'tenant-id': () => {
          throw new SetupError('POWERSHELL_TIMEOUT', 'Set-S2STenantId did not answer');
        },
      }),
    );
    // Attempt 2: tenant-id finds it already set; the restart is still owed and tenant-id counts as changed.
    const again = world();
    const runner = await runAll(again, runId, 2, {});
    expect(runner.wroteSteps()).toEqual(['tenant-id', 'restart-services']);
    expect(runner.snapshot().find((s) => s.id === 'restart-services')?.detail).toBe('restarted');
    expect(runner.snapshot().find((s) => s.id === 'tenant-id')?.detail).toMatch(/earlier attempt stopped during this step/);

    // A trigger step that finished (done, nothing changed) leaves no restart owed on a later attempt.
    const clean = newRunId();
    await failure(runAll(world(), clean, 1, { 'email-profile': () => { throw new SetupError('STEP_FAILED', 'boom'); } }));
    const resumed = await runAll(world(), clean, 2, {});
    expect(resumed.wroteSteps()).toEqual([]);
  });

  it('an intent written by someone else (bad MAC) is ignored', async () => {
    const runId = newRunId();
    await redis.hset(certStepsKey(prefix, runId), '_intent:tenant-id', JSON.stringify({ entry: '{"seq":99}', mac: 'forged' }));
    expect((await journal.intents(runId)).size).toBe(0);
    await journal.markIntent(runId, 'tenant-id');
    expect([...(await journal.intents(runId)).keys()]).toEqual(['tenant-id']);
  });

  it('the step journal lives as long as a run can be resumed', () => {
    expect(CERT_JOURNAL_TTL_MS).toBeGreaterThanOrEqual(RUN_TTL_SECONDS * 1000);
  });

  it('stops with CANCELLED before the next step when the cancel key is set; the steps done stay done', async () => {
    const w = world();
    const runId = newRunId();
    const error = await failure(
      runAll(w, runId, 1, {
        'tenant-id': () => {
          w.cancelled.value = true;
          return { detail: 'set', changed: true, wrote: true };
        },
      }),
    );
    expect(error.code).toBe('CANCELLED');
    expect(error.retryable).toBe(false);
    expect(error.message).toBe("Cancelled at someone's request before 'Restart MSCRMAsyncService and MSCRMAsyncService$maintenance'; the steps done so far stay done.");
    expect(w.calls).toEqual(['preflight', 'tenant-id']);
    const steps = error.details?.['steps'] as { id: string; state: string }[];
    expect(steps.map((s) => s.state)).toEqual(['done', 'done', 'pending', 'pending', 'pending']);
    expect(w.audit.at(-1)).toMatchObject({ kind: 'step', what: 'step restart-services', runId, deployment: 'contoso-prod' });
    expect(w.audit.at(-1)?.outcome).toMatch(/^cancelled: /);
  });

  it('goes on when the cancel key cannot be read', async () => {
    const w = world();
    w.ctx.isCancelled = () => Promise.reject(new Error('Redis is down'));
    await runAll(w, newRunId(), 1, {});
    expect(w.calls).toEqual(IDS);
  });

  it('appends one audit entry per step (done, failed), and an audit log that fails is not fatal', async () => {
    const w = world();
    const runId = newRunId();
    await failure(
      runAll(w, runId, 1, {
        'email-profile': () => {
          throw new SetupError('STEP_FAILED', 'the profile reads back without autodiscover');
        },
      }),
    );
    expect(w.audit.map((e) => [e.what, e.outcome.split(':')[0]])).toEqual([
      ['step preflight', 'done'],
      ['step tenant-id', 'done'],
      ['step restart-services', 'done'],
      ['step email-profile', 'failed'],
    ]);
    expect(w.audit[0]).toMatchObject({ kind: 'step', runId, deployment: 'contoso-prod' });
    expect(w.audit[0]?.actor).toMatch(/^agent /);
    expect(w.audit[3]?.outcome).toBe('failed: STEP_FAILED: the profile reads back without autodiscover');

    const broken = world();
    broken.ctx.audit = () => Promise.reject(new Error('XADD refused'));
    await runAll(broken, newRunId(), 1, {});
    expect(broken.calls).toEqual(IDS);
  });

  it('writes its entries to the real audit stream', async () => {
    const w = world();
    const log = createAuditLog({ redis, prefix });
    w.ctx.audit = (entry) => log.append(entry);
    const runId = newRunId();
    await runAll(w, runId, 1, {});
    const latest = await log.latest('contoso-prod', 10);
    expect(latest.filter((e) => e.runId === runId).map((e) => e.what).reverse()).toEqual(IDS.map((id) => `step ${id}`));
  });
});
