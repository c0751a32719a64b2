import type { Redis } from 'ioredis';
import { progressSchema, runIdSchema, type Progress } from '../../jobs/job-types.ts';
import { CardLock } from './card-lock.ts';
import { touchesRegistration } from './cert-rules.ts';
import { decodeRun, encodeNewRun, encodePatch } from './run-codec.ts';
import { CANCEL_KEY_TTL_SECONDS, RUN_INDEX_MAX, RUN_TTL_SECONDS, finalStates, personSchema, type AbandonOutcome, type CertApproveOutcome, type NewRun, type Person, type RelayDecision, type ResumeOutcome, type RollbackFailedOutcome, type RollbackRequestOutcome, type Run, type RunPatch, type RunState, type TransitionOutcome } from './run-model.ts';
import { runScripts } from './run-scripts.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

/**
 * The runs in Redis (the model and its states: run-model.ts; the hash codec: run-codec.ts; the
 * scripts that change them atomically: lua/). Key strings:
 *   <prefix>:run:<runId>             the run's hash
 *   <prefix>:runs:<deployment>       the deployment's index (sorted by creation time)
 *   <prefix>:cancel:<runId>          cancel requested (read by the agent between steps)
 *   <prefix>:cert-active:<deployment> the certificate change in progress
 *   <prefix>:run-lock:<runId>        the run card's lock (card-lock.ts)
 */
export interface RunStoreOptions {
  redis: Redis;
  prefix: string;
  now?: () => number;
}

export class RunStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #cardLock: CardLock;

  constructor(options: RunStoreOptions) {
    this.#redis = options.redis;
    this.#prefix = options.prefix;
    this.#now = options.now ?? Date.now;
    this.#cardLock = new CardLock(options.redis, options.prefix);
  }

  key(runId: string): string {
    return redisKeys.run(this.#prefix, runId);
  }

  async create(run: NewRun): Promise<Run> {
    const fields = encodeNewRun(run, new Date(this.#now()).toISOString());
    const key = this.key(run.runId);
    // One script: a run id is never reused, and the run never exists without its TTL.
    const created = await runScripts.create.run(this.#redis, [key, this.indexKey(run.deployment)], [String(RUN_TTL_SECONDS), String(this.#now()), String(RUN_INDEX_MAX), ...Object.entries(fields).flat()]);
    if (created !== 1) throw new Error(`run ${run.runId} already exists`);
    const stored = await this.get(run.runId);
    if (!stored) throw new Error(`run ${run.runId} vanished after creation`);
    return stored;
  }

  /** Sorted set of a deployment's run ids by creation time (`@setup jobs`). */
  indexKey(deployment: string): string {
    return redisKeys.runIndex(this.#prefix, deployment);
  }

  /** The deployment's latest runs, newest first (runs whose record expired are left out). */
  async listRuns(deployment: string, limit: number): Promise<Run[]> {
    const ids = await this.#redis.zrevrange(this.indexKey(deployment), 0, Math.max(0, limit - 1));
    if (ids.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.key(id));
    const replies = (await pipeline.exec()) ?? [];
    const runs: Run[] = [];
    for (const [error, h] of replies) {
      if (error || !h || typeof h !== 'object') continue;
      const hash = h as Record<string, string>;
      if (!hash['state'] || !hash['runId']) continue;
      try {
        runs.push(decodeRun(hash));
      } catch {
        // A record this version cannot read (written by a newer bot) is left out of the list.
      }
    }
    return runs;
  }

  /**
   * The key the agent reads between runbook steps (`cancel <run>` of a running run): present means
   * "stop before the next step". Not a secret and not signed: its only power is to stop a run.
   */
  cancelKey(runId: string): string {
    return redisKeys.cancel(this.#prefix, runId);
  }

  /**
   * `cancel <run>` of an approved or running runbook run: sets its cancel key (TTL a day) and records
   * who asked, in one step; refused when the run is in another state.
   */
  async requestCancel(runId: string, by: Person): Promise<TransitionOutcome> {
    const raw = await runScripts.requestCancel.run(this.#redis, [this.key(runId), this.cancelKey(runId)], [JSON.stringify(personSchema.parse(by)), String(CANCEL_KEY_TTL_SECONDS), new Date(this.#now()).toISOString()]);
    const [status, current] = raw;
    if (status === 'ok') return { ok: true, from: current as RunState };
    if (status === 'missing') return { ok: false, reason: 'missing' };
    return { ok: false, reason: 'conflict', current: current as RunState };
  }

  /** Whether the run's cancel key is set (the agent will stop before its next step). */
  async cancelRequested(runId: string): Promise<boolean> {
    return (await this.#redis.exists(this.cancelKey(runId))) === 1;
  }

  async get(runId: string): Promise<Run | undefined> {
    const h = await this.#redis.hgetall(this.key(runId));
    if (!h['state'] || !h['runId']) return undefined;
    return decodeRun(h);
  }

  /** Sets fields without a state change (card id, post failure); false when the run no longer exists (nothing is written). */
  async patch(runId: string, patch: RunPatch): Promise<boolean> {
    const pairs = encodePatch(patch);
    if (pairs.length === 0) return true;
    const n = await runScripts.patch.run(this.#redis, [this.key(runId)], pairs);
    return n === 1;
  }

  /**
   * Sets the sticky registrationTouched flag (a report showed register-crm running, done or failed),
   * for a report that may not store its steps (an earlier attempt's, one that no longer fits the
   * state). Monotonic: never cleared. False when the run no longer exists.
   */
  async markRegistrationTouched(runId: string): Promise<boolean> {
    const n = await runScripts.patch.run(this.#redis, [this.key(runId)], ['registrationTouched', '1']);
    return n === 1;
  }

  /** The deployment's "active certificate change" key: the run id of the rotation or rollback approved, running or halted. */
  certActiveKey(deployment: string): string {
    return redisKeys.certActive(this.#prefix, deployment);
  }

  /** The run id of the deployment's active certificate change, if any. */
  async certActive(deployment: string): Promise<string | undefined> {
    return (await this.#redis.get(this.certActiveKey(deployment))) ?? undefined;
  }

  /**
   * Compare-and-set: moves the run to `to` only if it is in one of `from`. `releaseCertActive` (the
   * deployment): when `to` is final, the deployment's cert-active key is released in the same step if it holds this run.
   */
  async transition(runId: string, from: readonly RunState[], to: RunState, patch: RunPatch = {}, options: { refuseIfExpired?: boolean; releaseCertActive?: string } = {}): Promise<TransitionOutcome> {
    const now = this.#now();
    const keys = options.releaseCertActive !== undefined && finalStates.includes(to) ? [this.key(runId), this.certActiveKey(options.releaseCertActive)] : [this.key(runId)];
    const raw = await runScripts.transition.run(this.#redis, keys, [from.join(','), to, String(now), options.refuseIfExpired ? '1' : '0', new Date(now).toISOString(), ...encodePatch(patch)]);
    const [status, current] = raw;
    if (status === 'ok') return { ok: true, from: current as RunState };
    if (status === 'missing') return { ok: false, reason: 'missing' };
    if (status === 'expired') return { ok: false, reason: 'expired', current: current as RunState };
    return { ok: false, reason: 'conflict', current: current as RunState };
  }

  /**
   * Resume of a halted run: halted → approved with attempt + 1, in one step, only if the run's
   * attempt is still `expectedAttempt` (the one the clicker's click was checked against).
   */
  async resume(runId: string, expectedAttempt: number, patch: RunPatch = {}): Promise<ResumeOutcome> {
    const raw = await runScripts.resume.run(this.#redis, [this.key(runId), this.cancelKey(runId)], [String(expectedAttempt), new Date(this.#now()).toISOString(), ...encodePatch(patch)]);
    const [status, current, attempt] = raw;
    if (status === 'ok') return { ok: true, attempt: Number(attempt) };
    if (status === 'missing') return { ok: false, reason: 'missing' };
    if (status === 'attempt-changed') return { ok: false, reason: 'attempt-changed', attempt: Number(attempt) };
    if (status === 'rollback-pending') return { ok: false, reason: 'rollback-pending', rollbackRunId: current };
    return { ok: false, reason: 'conflict', current: current as RunState };
  }

  /**
   * Approval of a cert-rotate or cert-rollback run (awaiting-approval → approved, refused once
   * expired), claiming the deployment's cert-active key in the same step: refused while another
   * certificate run holds it and is not final. A rollback (`parentRunId`) moves its halted rotation
   * to superseded at the same time and takes the key over from it.
   */
  async approveCert(runId: string, deployment: string, parentRunId: string | undefined, patch: RunPatch): Promise<CertApproveOutcome> {
    const now = this.#now();
    const activeKey = this.certActiveKey(deployment);
    for (let i = 0; ; i++) {
      const holder = (await this.#redis.get(activeKey)) ?? '';
      const holderKey = runIdSchema.safeParse(holder).success ? this.key(holder) : this.key(runId);
      const raw = await runScripts.approveCert.run(this.#redis, [this.key(runId), activeKey, parentRunId !== undefined ? this.key(parentRunId) : this.key(runId), holderKey], [String(now), new Date(now).toISOString(), runId, parentRunId ?? '', holder, String(RUN_TTL_SECONDS), ...encodePatch(patch)]);
      const [status, a, b] = raw;
      if (status === 'retry' && i < 5) continue;
      if (status === 'ok') return { ok: true, from: a as RunState };
      if (status === 'missing') return { ok: false, reason: 'missing' };
      if (status === 'expired') return { ok: false, reason: 'expired', current: a as RunState };
      if (status === 'busy') return { ok: false, reason: 'busy', holder: a, holderState: b as RunState };
      if (status === 'parent') return { ok: false, reason: 'parent', parentState: a };
      if (status === 'retry') throw new Error('the active certificate change kept changing: try again');
      return { ok: false, reason: 'conflict', current: a as RunState };
    }
  }

  /** Records a pending rollback on a halted rotation (refused when it is not halted, or one is pending already). */
  async requestRollback(rotationRunId: string, rollbackRunId: string, by: Person): Promise<RollbackRequestOutcome> {
    const raw = await runScripts.requestRollback.run(this.#redis, [this.key(rotationRunId)], [runIdSchema.parse(rollbackRunId), JSON.stringify(personSchema.parse(by)), new Date(this.#now()).toISOString()]);
    const [status, value] = raw;
    if (status === 'ok') return { ok: true };
    if (status === 'missing') return { ok: false, reason: 'missing' };
    if (status === 'pending') return { ok: false, reason: 'pending', rollbackRunId: value };
    return { ok: false, reason: 'conflict', current: value as RunState };
  }

  /** Clears the rotation's pending rollback if it is `rollbackRunId` (rejected, withdrawn, expired, not posted); true when cleared. */
  async clearPendingRollback(rotationRunId: string, rollbackRunId: string): Promise<boolean> {
    const n = await runScripts.clearPendingRollback.run(this.#redis, [this.key(rotationRunId)], [rollbackRunId]);
    return n === 1;
  }

  /**
   * An approved rollback that never started: it fails, and its rotation is halted again (Resume,
   * Roll back) with the cert-active key back on it, in one step.
   */
  async rollbackNotStarted(rollbackRunId: string, rotationRunId: string, deployment: string, patch: RunPatch): Promise<TransitionOutcome> {
    const outcome = await this.rollbackFailed(rollbackRunId, rotationRunId, deployment, ['approved'], patch);
    return outcome.ok ? { ok: true, from: outcome.from } : outcome;
  }

  /**
   * A rollback that failed (from one of `from`): → failed with `patch`. If it never touched CRM's
   * registration (its register-crm never ran, counting the steps in `patch`), its rotation is halted
   * again with the cert-active key back on it (`rotationHalted`); otherwise the key is released.
   * One step.
   */
  async rollbackFailed(rollbackRunId: string, rotationRunId: string, deployment: string, from: readonly RunState[], patch: RunPatch): Promise<RollbackFailedOutcome> {
    const raw = await runScripts.rollbackFailed.run(this.#redis, [this.key(rollbackRunId), this.certActiveKey(deployment), this.key(rotationRunId)], [new Date(this.#now()).toISOString(), String(RUN_TTL_SECONDS), from.join(','), ...encodePatch(patch)]);
    const [status, current, halted] = raw;
    if (status === 'ok') return { ok: true, from: current as RunState, rotationHalted: halted === '1' };
    if (status === 'missing') return { ok: false, reason: 'missing' };
    return { ok: false, reason: 'conflict', current: current as RunState };
  }

  /**
   * Abandon of a halted rotation: halted → failed with `patch`, releasing the deployment's
   * cert-active key, in one step; refused while a rollback is pending or when the rotation ever
   * touched CRM's registration.
   */
  async abandon(runId: string, deployment: string, patch: RunPatch): Promise<AbandonOutcome> {
    const raw = await runScripts.abandon.run(this.#redis, [this.key(runId), this.certActiveKey(deployment)], [new Date(this.#now()).toISOString(), ...encodePatch(patch)]);
    const [status, value] = raw;
    if (status === 'ok') return { ok: true, from: value as RunState };
    if (status === 'missing') return { ok: false, reason: 'missing' };
    if (status === 'rollback-pending') return { ok: false, reason: 'rollback-pending', rollbackRunId: value };
    if (status === 'registration-touched') return { ok: false, reason: 'registration-touched' };
    return { ok: false, reason: 'conflict', current: value as RunState };
  }

  /** Records progress (if newer) and decides whether to post now, later, or not at all. */
  async relayProgress(runId: string, seq: number, progress: Progress | undefined, intervalMs: number): Promise<RelayDecision> {
    const parsed = progress ? progressSchema.parse(progress) : undefined;
    const raw = await runScripts.relayProgress.run(this.#redis, [this.key(runId)], [String(seq), parsed ? JSON.stringify(parsed) : '', String(this.#now()), String(intervalMs), parsed?.steps ? JSON.stringify(parsed.steps) : '', touchesRegistration(parsed?.steps) ? '1' : '']);
    const [status, value] = raw;
    if (status === 'missing') return { action: 'missing' };
    if (status === 'stale') return { action: 'stale' };
    if (status === 'wait') return { action: 'wait', waitMs: Math.max(1, Number(value)) };
    const run = await this.get(runId);
    return { action: 'post', seq: Number(value), progress: run?.progress };
  }

  lockKey(runId: string): string {
    return this.#cardLock.key(runId);
  }

  /** The run's card lock (card-lock.ts): held by every write of the run card. */
  acquireCardLock(runId: string, ttlMs: number): Promise<string | undefined> {
    return this.#cardLock.acquire(runId, ttlMs);
  }

  releaseCardLock(runId: string, token: string): Promise<boolean> {
    return this.#cardLock.release(runId, token);
  }

  /** True the first time the final run card of report `seq` is marked posted (false for a run that no longer exists). */
  async markFinalPosted(runId: string, seq: number): Promise<boolean> {
    const n = await runScripts.markSeq.run(this.#redis, [this.key(runId)], ['finalPostedSeq', String(seq)]);
    return n === 1;
  }

  /**
   * True the first time the results card of report `seq` is marked sent. Kept apart from the final
   * run card: a report redelivered because the run card could not be updated must not send the
   * results card again.
   */
  async markResultsSent(runId: string, seq: number): Promise<boolean> {
    const n = await runScripts.markSeq.run(this.#redis, [this.key(runId)], ['resultsSentSeq', String(seq)]);
    return n === 1;
  }
}
