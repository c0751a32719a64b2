import { hostname } from 'node:os';
import { SetupError, isSetupError } from '../../core/setup-error.ts';
import { stepTitles, type StepId, type StepState } from '../../jobs/cert-types.ts';
import type { JobContext } from '../runtime/job-context.ts';
import { knownHint } from '../runtime/known-errors.ts';
import type { JournalEntry, StepJournal } from './journal.ts';
import type { Step, StepEnv } from './step.ts';
import { stepRemedies } from './remedies.ts';

export interface StepOutcome {
  /** What the step did or found ("imported on CRMAPP01, already on CRMAPP02"). */
  detail: string;
  /** Whether it changed something the async services pick up only after a restart. */
  changed?: boolean;
  /** Whether it wrote something (the runbook's `changed` list; default: `changed`). */
  wrote?: boolean;
  /** done (default), skipped (nothing to do by design), failed (recorded, the run goes on: verification). */
  state?: 'done' | 'skipped' | 'failed';
  /** Public facts to keep in the journal. */
  data?: Record<string, string>;
}

/** What a running step gets from the runner. */
export interface StepHandle {
  /** Progress shown on the card ("configured 1,200 of 5,000 mailboxes"). */
  update(detail: string): void;
  /**
   * Public facts to keep in the journal even if the step then fails (what a half-done step already
   * changed), for the next attempt; replaced by the outcome's data when the step succeeds.
   */
  keep(data: Record<string, string>): void;
}

/** Steps that always run again on a later attempt: they are checks, not changes. */
const ALWAYS_RUN: ReadonlySet<StepId> = new Set(['validate', 'validate-old', 'verify', 'preflight']);

const clip = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** What the runner calls a step in logs and audit entries. */
const AGENT_ACTOR = `agent ${hostname()}`;

/**
 * Runs the steps of one multi-step job (a certificate rotation or rollback, a runbook run) in
 * order, each recorded in the journal, with a progress report (`phase: 'step'`, every step's state)
 * after every change of state. On a later attempt a step the journal has as done is reported done
 * "(earlier attempt)" without running, except the checks (ALWAYS_RUN) and restart-services when
 * something needing a restart changed after its recorded run.
 *
 * Before a step runs it asks `ctx.isCancelled` (the bot's cancel key): when set the run stops with
 * CANCELLED and the steps done stay done. After every step it appends an audit entry
 * (`ctx.audit`); a failing audit log is logged, never fatal.
 */
export interface StepRunnerOptions {
  /**
   * Steps whose change the async services pick up only after restart-services (the runbook's
   * RESTART_TRIGGERS). Before one runs, the runner records an intent in the journal; a later attempt
   * that finds an intent no `done` entry settled (the agent stopped, or the step failed, after its
   * change may have been made) counts the step as changed even when it now finds "already": the
   * restart stays owed.
   */
  restartTriggers?: ReadonlySet<StepId>;
}

export class StepRunner {
  readonly states: StepState[];
  readonly #entries: Map<StepId, JournalEntry>;
  readonly #intents: Map<StepId, number>;
  readonly #triggers: ReadonlySet<StepId>;

  private constructor(
    private readonly ctx: JobContext,
    private readonly journal: StepJournal,
    private readonly runId: string,
    private readonly attempt: number,
    ids: readonly StepId[],
    entries: Map<StepId, JournalEntry>,
    intents: Map<StepId, number>,
    triggers: ReadonlySet<StepId>,
  ) {
    this.states = ids.map((id) => ({ id, state: 'pending' }));
    this.#entries = entries;
    this.#intents = intents;
    this.#triggers = triggers;
  }

  static async start(ctx: JobContext, journal: StepJournal, runId: string, attempt: number, ids: readonly StepId[], options: StepRunnerOptions = {}): Promise<StepRunner> {
    const triggers = options.restartTriggers ?? new Set<StepId>();
    const intents = triggers.size > 0 ? await journal.intents(runId) : new Map<StepId, number>();
    const runner = new StepRunner(ctx, journal, runId, attempt, ids, await journal.load(runId), intents, triggers);
    runner.#report();
    return runner;
  }

  /** Whether an earlier attempt began a trigger step and no `done` entry of it came after (its change may be made, unrecorded). */
  #unsettledIntent(id: StepId): boolean {
    const intent = this.#intents.get(id);
    if (intent === undefined) return false;
    const entry = this.#entries.get(id);
    return !(entry?.state === 'done' && entry.seq > intent);
  }

  /** What an earlier attempt recorded for a step. */
  recorded(id: StepId): JournalEntry | undefined {
    return this.#entries.get(id);
  }

  /** A copy of the step states (for results and error details). */
  snapshot(): StepState[] {
    return this.states.map((s) => ({ ...s }));
  }

  /** The steps of this run that wrote something, over all its attempts, in step order (the runbook's `changed`). */
  wroteSteps(): StepId[] {
    return this.states.map((s) => s.id).filter((id) => {
      const entry = this.#entries.get(id);
      return entry?.state === 'done' && (entry.wrote ?? entry.changed);
    });
  }

  /** Whether a step of this run changed something the async services read after restart-services last ran (or at all, when it has not). */
  restartOwed(): boolean {
    const restart = this.#entries.get('restart-services');
    return this.#changedSince(restart?.state === 'done' ? restart.seq : -1);
  }

  /** Marks a step skipped without running it (and without a journal entry). */
  skip(id: StepId, detail: string): void {
    this.#set(id, 'skipped', detail);
    // #audit never rejects; the entry is written in the background.
    void this.#audit(id, `skipped: ${detail}`);
  }

  /** Runs one step: skipped as done when an earlier attempt did it, else checked-then-changed by `fn`. */
  async run(id: StepId, fn: (step: StepHandle) => Promise<StepOutcome>): Promise<StepOutcome> {
    const earlier = this.#entries.get(id);
    if (earlier?.state === 'done' && !ALWAYS_RUN.has(id) && !(id === 'restart-services' && this.#changedSince(earlier.seq))) {
      const detail = clip(`${earlier.detail ?? 'done'} (earlier attempt)`);
      this.#set(id, 'done', detail);
      await this.#audit(id, `done: ${detail}`);
      return { detail, changed: false, wrote: false, ...(earlier.data ? { data: earlier.data } : {}) };
    }
    if (this.ctx.signal.aborted) throw this.ctx.signal.reason;
    await this.#stopIfCancelled(id);
    const trigger = this.#triggers.has(id);
    const interrupted = trigger && this.#unsettledIntent(id);
    this.#set(id, 'running');
    let outcome: StepOutcome;
    let kept: Record<string, string> | undefined;
    try {
      if (trigger) this.#intents.set(id, await this.journal.markIntent(this.runId, id));
      outcome = await fn({ update: (detail) => this.#set(id, 'running', detail), keep: (data) => (kept = { ...data }) });
    } catch (error) {
      throw await this.#fail(id, error, kept);
    }
    if (interrupted && !outcome.changed && (outcome.state ?? 'done') === 'done') {
      // An earlier attempt stopped during this step: what it finds done now may be that attempt's change.
      outcome = { ...outcome, changed: true, wrote: true, detail: `${outcome.detail} (an earlier attempt stopped during this step: its change counts, the services restart)` };
    }
    const state = outcome.state ?? 'done';
    if (state === 'skipped') {
      this.#set(id, 'skipped', outcome.detail);
      await this.#audit(id, `skipped: ${outcome.detail}`);
      return outcome;
    }
    await this.#record(id, state, outcome);
    this.#set(id, state, outcome.detail);
    await this.#audit(id, `${state}: ${outcome.detail}`);
    return outcome;
  }

  /** CANCELLED (not retryable) when someone asked to cancel the run; a cancel key that cannot be read is logged and the run goes on. */
  async #stopIfCancelled(id: StepId): Promise<void> {
    if (!this.ctx.isCancelled) return;
    let cancelled: boolean;
    try {
      cancelled = await this.ctx.isCancelled();
    } catch (error) {
      this.ctx.logger.warn({ err: (error as Error).message, step: id }, 'the cancel request could not be read; going on');
      return;
    }
    if (!cancelled) return;
    const message = `Cancelled at someone's request before '${stepTitles[id]}'; the steps done so far stay done.`;
    this.ctx.logger.info({ step: id }, 'run cancelled before the next step');
    await this.#audit(id, `cancelled: ${message}`);
    throw new SetupError('CANCELLED', message, { retryable: false, details: { step: id, steps: this.snapshot() } });
  }

  /** Whether a step recorded after `seq` changed something (then services need another restart). */
  #changedSince(seq: number): boolean {
    for (const entry of this.#entries.values()) if (entry.state === 'done' && entry.changed && entry.seq > seq) return true;
    return false;
  }

  async #record(id: StepId, state: 'done' | 'failed', outcome: StepOutcome): Promise<void> {
    const entry = await this.journal.record(this.runId, id, {
      state,
      detail: clip(outcome.detail),
      changed: outcome.changed ?? false,
      wrote: outcome.wrote ?? outcome.changed ?? false,
      attempt: this.attempt,
      ...(outcome.data ? { data: outcome.data } : {}),
    });
    this.#entries.set(id, entry);
  }

  async #fail(id: StepId, error: unknown, kept: Record<string, string> | undefined): Promise<SetupError> {
    // A shutdown is not a failed step: the job goes back to the queue and runs the step again.
    if (this.ctx.signal.aborted && error === this.ctx.signal.reason) {
      this.#set(id, 'pending');
      return isSetupError(error) ? error : new SetupError('INTERNAL', 'The agent is shutting down.', { retryable: true, cause: error });
    }
    const cause = isSetupError(error) ? error : new SetupError('STEP_FAILED', error instanceof Error ? error.message : String(error), { cause: error });
    const server = typeof cause.details?.['server'] === 'string' ? cause.details['server'] : undefined;
    const message = `Step '${stepTitles[id]}' failed${server ? ` on ${server}` : ''}: ${cause.message}`;
    // The journal keeps the failure for the record; its loss must not hide the step's own error.
    await this.#record(id, 'failed', { detail: message, ...(kept ? { data: kept } : {}) }).catch((journalError: unknown) => {
      this.ctx.logger.warn({ err: (journalError as Error).message, step: id }, 'failed step not recorded in the journal');
    });
    this.#set(id, 'failed', message);
    await this.#audit(id, `failed: ${cause.code}: ${cause.message}`);
    this.ctx.logger.error({ step: id, code: cause.code, server, reason: cause.message }, 'step failed');
    // The cause's own hint, else the known remediation its text names, else where to look for this step.
    const hint = cause.hint ?? knownHint(cause.message) ?? stepRemedies[id];
    return new SetupError(cause.code, message, {
      ...(hint === undefined ? {} : { hint }),
      retryable: cause.retryable,
      cause: error,
      details: { ...cause.details, step: id, steps: this.snapshot() },
    });
  }

  /** One audit entry per step outcome; never fatal. */
  async #audit(id: StepId, outcome: string): Promise<void> {
    if (!this.ctx.audit) return;
    try {
      await this.ctx.audit({ kind: 'step', actor: AGENT_ACTOR, what: `step ${id}`, runId: this.runId, outcome, deployment: this.ctx.deployment ?? 'default' });
    } catch (error) {
      this.ctx.logger.warn({ err: (error as Error).message, step: id }, 'step not written to the audit log');
    }
  }

  #set(id: StepId, state: StepState['state'], detail?: string): void {
    const step = this.states.find((s) => s.id === id);
    if (!step) throw new SetupError('INTERNAL', `Step ${id} is not a step of this run.`);
    step.state = state;
    if (detail === undefined) delete step.detail;
    else step.detail = clip(detail);
    this.#report();
  }

  #report(): void {
    const done = this.states.filter((s) => s.state === 'done' || s.state === 'skipped').length;
    this.ctx.report({ phase: 'step', done, total: this.states.length, steps: this.snapshot() });
  }
}

/**
 * Runs `steps` in order with `runner` (each checked, then changed, and journaled): a step whose
 * `skip` gives a reason is marked skipped without running. A failed step throws (the run halts).
 */
export async function runSteps<E extends StepEnv>(runner: StepRunner, steps: readonly Step<E>[], env: E): Promise<void> {
  for (const step of steps) {
    const why = step.skip?.(env);
    if (why === undefined) await runner.run(step.id, (handle) => step.apply(env, handle));
    else runner.skip(step.id, why);
  }
}
