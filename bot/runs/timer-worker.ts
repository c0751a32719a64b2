import { DelayedError, UnrecoverableError, type Job, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/logger.ts';
import { SetupError } from '../../core/setup-error.ts';
import { timerQueueName } from '../../jobs/deployment.ts';
import { jobTtlMs } from '../../jobs/job-options.ts';
import type { JobType } from '../../jobs/job-types.ts';
import { loadRun, readAgentSeen, type BotServices } from '../bot-services.ts';
import { startBotWorker, withCardLock } from '../bot-worker.ts';
import { refreshCertCard } from '../reports/cert-card-refresh.ts';
import { CERT_WATCH_JOB_NAME, recordCertWatchFailure, runCertWatch } from '../cert-watch/cert-watch.ts';
import type { AdaptiveCardJson } from '../cards/common/card-kit.ts';
import { certPlanFailedCard } from '../cards/cert/cert-plan-card.ts';
import { certRunCard, currentCertCard } from '../cards/cert/cert-run-card.ts';
import { certStatusFailedCard } from '../cards/cert/cert-status-card.ts';
import { decidedCard, planFailedCard } from '../cards/mailboxes/plan-cards.ts';
import { runCard } from '../cards/mailboxes/run-cards.ts';
import { statusFailedCard } from '../cards/mailboxes/status-card.ts';
import { preflightFailedCard } from '../cards/runbook/preflight-card.ts';
import { setupPlanFailedCard } from '../cards/runbook/setup-plan-card.ts';
import { currentSetupCard, setupRunCard } from '../cards/runbook/setup-run-card.ts';
import { kindOf } from './run-kinds.ts';
import type { Run, RunError, RunPatch, RunState, TransitionOutcome } from './run-model.ts';
import { timerDataSchema, type TimerData, type TimerKind } from './run-timers.ts';

/**
 * Fires the run timers (see run-timers.ts). A BullMQ worker on `setup-timers-<deployment>` in every
 * bot instance; each timer goes to one instance. A timer acts only if the run is still where it was
 * left (compare-and-set on the expected state): a timer that finds the run moved on does nothing.
 *
 * - plan-timeout:    planning → plan-failed (status: running → failed), "no agent answered"
 * - approval-expiry: awaiting-approval → expired, the plan card without buttons for everyone
 * - start-timeout:   approved → failed, "no agent started the job before it expired" (a rotation:
 *                    approved → halted, so it can be resumed; only for the attempt it was scheduled for)
 * - certificate runs: the same with their cards; a cert-watch run fails without a card
 * - the runbook: preflight and setup plans as above; start-timeout: approved → halted (Retry step,
 *   Cancel), like a rotation, for the attempt it was scheduled for
 *
 * The same queue carries the certificate watch's scheduler jobs (name `cert-watch`): they go to
 * runCertWatch (bot/cert-watch.ts), not to a run.
 */
export interface TimerWorkerOptions {
  services: BotServices;
  connection: Redis;
  concurrency?: number;
}

interface TimerMove {
  from: RunState[];
  to: RunState;
  patch: RunPatch;
  /** The card for everyone; undefined: the run has no card (cert-watch). */
  card: (run: Run) => AdaptiveCardJson | undefined | Promise<AdaptiveCardJson | undefined>;
  /** Instead of the plain compare-and-set (a rollback that never started also puts its rotation back). */
  apply?: () => Promise<TransitionOutcome>;
  /** After the move and the card (also on a retry that finds the move made): what else it settles. */
  after?: (run: Run, log: Logger) => Promise<void>;
}

export class TimerWorker {
  readonly #services: BotServices;
  readonly #log: Logger;
  readonly #worker: Worker;

  constructor(options: TimerWorkerOptions) {
    this.#services = options.services;
    this.#log = options.services.logger.child({ component: 'run-timers' });
    const { config } = options.services;
    this.#worker = startBotWorker(
      { queueName: timerQueueName(config.deployment), connection: options.connection, prefix: config.redisPrefix, concurrency: options.concurrency ?? 4, log: this.#log, what: 'timer' },
      (job, token) => this.process(job, token),
    );
  }

  async waitUntilReady(): Promise<void> {
    await this.#worker.waitUntilReady();
  }

  async close(): Promise<void> {
    await this.#worker.close();
  }

  async process(job: Job, token: string | undefined): Promise<void> {
    if (job.name === CERT_WATCH_JOB_NAME) {
      await runCertWatch(this.#services, this.#log.child({ timerJobId: job.id, timer: CERT_WATCH_JOB_NAME }));
      return;
    }
    const parsed = timerDataSchema.safeParse(job.data);
    if (!parsed.success) {
      this.#log.warn({ timerJobId: job.id }, 'dropping a timer with invalid data');
      throw new UnrecoverableError('invalid timer data');
    }
    const timer = parsed.data;
    const log = this.#log.child({ timerJobId: job.id, runId: timer.runId, timer: timer.timer });
    const { runs, now } = this.#services;

    // Never act before the time (a promoted job, or instances whose clocks differ): wait the rest.
    const early = timer.dueAt - now();
    if (early > 0) {
      log.debug({ early }, 'timer fired early: delayed until it is due');
      await job.moveToDelayed(Date.now() + early, token);
      throw new DelayedError();
    }

    const run = await loadRun(this.#services, timer.runId, log);
    if (!run) {
      log.info('timer for an unknown run: nothing to do');
      return;
    }
    // The card lock first (see progress-relay.ts): a report or a click writing the card now would
    // otherwise land after this timer's card. Held: come back shortly, nothing changed yet.
    if (timer.timer === 'start-timeout' && (timer.attempt ?? 1) !== run.attempt) {
      log.info({ attempt: run.attempt, timerAttempt: timer.attempt ?? 1 }, 'start timeout of an earlier attempt: nothing to do');
      return;
    }
    await withCardLock(runs, run.runId, job, token, log, async () => {
      const move = this.#move(run, timer);
      // A certificate change reaching a final state releases the deployment's cert-active key in the
      // same step (the transition does so only for a final `to`, and only if the key holds this run).
      const moved = move.apply
        ? await move.apply()
        : await runs.transition(run.runId, move.from, move.to, move.patch, kindOf(run).certChange ? { releaseCertActive: run.deployment } : {});
      if (!moved.ok) {
        // A retry after this worker stopped (or Teams failed) between the state change and the card: post the card again.
        const rerun = job.attemptsMade > 0 || job.stalledCounter > 0;
        if (!(rerun && moved.reason === 'conflict' && moved.current === move.to && madeByTimer(run, timer.timer))) {
          log.debug({ outcome: moved }, 'the run has moved on: timer does nothing');
          return;
        }
      }
      const latest = await runs.get(run.runId);
      if (!latest) return;
      log.info({ from: moved.ok ? moved.from : move.to, to: move.to }, 'timer moved the run');
      const card = await move.card(latest);
      if (card) await this.#update(latest, card, log);
      if (move.after) await move.after(latest, log);
    });
  }

  #move(run: Run, timer: TimerData): TimerMove {
    const decidedAt = new Date(this.#services.now()).toISOString();
    switch (timer.timer) {
      case 'plan-timeout': {
        // What nobody answered: the job that starts the run (its plan, or the check itself).
        const first = kindOf(run).firstJob;
        if (first === 'cert-status') {
          const error = noAgentAnswered('cert-status', 'Check the agent is running and connected (`@setup status` shows when it last reported), then ask again.');
          return {
            from: ['running'],
            to: 'failed',
            patch: { error },
            card: (r) => (kindOf(r).watch ? undefined : certStatusFailedCard(r)),
            // A watch check nobody answered counts as a failed check (several in a row: the watch says so).
            ...(kindOf(run).watch ? { after: (r: Run, log: Logger) => (r.error ? recordCertWatchFailure(this.#services, r, r.error, log) : Promise.resolve()) } : {}),
          };
        }
        if (first === 'cert-plan') {
          const error = noAgentAnswered('cert-plan', 'Check the agent is running and connected (`@setup status` shows when it last reported), then `cert rotate` again.');
          return { from: ['planning'], to: 'plan-failed', patch: { error }, card: certPlanFailedCard };
        }
        if (first === 'preflight') {
          const error = noAgentAnswered('preflight', 'Check the agent is running and connected (`@setup status` shows when it last reported), then `preflight` again.');
          return { from: ['running'], to: 'failed', patch: { error }, card: preflightFailedCard };
        }
        if (first === 'setup-plan') {
          const error = noAgentAnswered('setup-plan', 'Check the agent is running and connected (`@setup status` shows when it last reported), then run the command again.');
          return { from: ['planning'], to: 'plan-failed', patch: { error }, card: setupPlanFailedCard };
        }
        if (first === 'status') {
          const error = noAgentAnswered('status', 'Check the agent is running and connected (the agent line above shows when it last reported), then ask again.');
          return { from: ['running'], to: 'failed', patch: { error }, card: async (r) => statusFailedCard(r, await readAgentSeen(this.#services)) };
        }
        const error = noAgentAnswered('plan', 'Check the agent is running and connected (`@setup status` shows when it last reported), then ask again.');
        return { from: ['planning'], to: 'plan-failed', patch: { error }, card: planFailedCard };
      }
      case 'approval-expiry':
        return {
          from: ['awaiting-approval'],
          to: 'expired',
          patch: { approval: { decision: 'expired', decidedAt } },
          card: kindOf(run).runbook ? currentSetupCard : kindOf(run).family === 'cert' ? currentCertCard : decidedCard,
          // An expired rollback: its rotation is plainly halted again (Resume, Roll back).
          ...(kindOf(run).rollsBack && run.parentRunId ? { after: (r: Run, log: Logger) => this.#rollbackSettled(r, log) } : {}),
        };
      case 'start-timeout': {
        // What no agent started: the job the approval (or a resume) enqueued.
        const approved = kindOf(run).approvedJob;
        if (approved === 'setup-run') {
          // Like a rotation: nothing of this attempt ran, so the run stays resumable (a setup run keeps the cert-active key).
          const error: RunError = {
            code: 'JOB_NOT_STARTED',
            message: `No on-premises agent started the run within ${duration(jobTtlMs['setup-run'])}, so the job expired and no agent will run it.`,
            hint: 'Start the agent and check it is connected (`@setup status` shows when it last reported), then Retry step (or `@setup resume <run>`), or Cancel.',
          };
          return { from: ['approved'], to: 'halted', patch: { error }, card: setupRunCard };
        }
        if (approved === 'cert-rotate' || approved === 'cert-rollback') {
          const type = approved;
          const error: RunError = {
            code: 'JOB_NOT_STARTED',
            message: `No on-premises agent started the ${type === 'cert-rotate' ? 'rotation' : 'rollback'} within ${duration(jobTtlMs[type])}, so the job expired and no agent will run it.`,
            hint: type === 'cert-rotate'
              ? 'Start the agent and check it is connected (`@setup status` shows when it last reported), then Resume.'
              : `Start the agent and check it is connected (\`@setup status\` shows when it last reported), then click Roll back on the rotation${run.parentRunId ? ` (run ${run.parentRunId})` : ''} again: it is halted again with Resume and Roll back.`,
          };
          if (type === 'cert-rotate') {
            // A rotation stays resumable (nothing of this attempt ran) and keeps the cert-active key.
            return { from: ['approved'], to: 'halted', patch: { error }, card: certRunCard };
          }
          const parentRunId = run.parentRunId;
          if (!parentRunId) return { from: ['approved'], to: 'failed', patch: { error }, card: certRunCard };
          // A rollback fails, and its rotation is halted again (no longer superseded) holding the cert-active key.
          return {
            from: ['approved'],
            to: 'failed',
            patch: { error },
            card: certRunCard,
            apply: () => this.#services.runs.rollbackNotStarted(run.runId, parentRunId, run.deployment, { error }),
            after: (_r: Run, log: Logger) => refreshCertCard(this.#services, parentRunId, log, 10_000),
          };
        }
        const type = approved === 'test' ? 'test' : 'approve';
        const error: RunError = {
          code: 'JOB_NOT_STARTED',
          message: `No on-premises agent started the job within ${duration(jobTtlMs[type])}, so it expired and no agent will run it. Nothing was changed.`,
          hint: 'Start the agent and check it is connected (`@setup status` shows when it last reported), then ask again.',
        };
        return { from: ['approved'], to: 'failed', patch: { error }, card: runCard };
      }
    }
  }

  /** An expired rollback: its rotation's pending rollback is cleared and the rotation's card updated. */
  async #rollbackSettled(rollback: Run, log: Logger): Promise<void> {
    if (!rollback.parentRunId) return;
    const cleared = await this.#services.runs.clearPendingRollback(rollback.parentRunId, rollback.runId);
    log.info({ rotationRunId: rollback.parentRunId, cleared }, 'rollback expired: the rotation\'s pending rollback is cleared');
    if (cleared) await refreshCertCard(this.#services, rollback.parentRunId, log, 10_000);
  }

  async #update(run: Run, card: AdaptiveCardJson, log: Logger): Promise<void> {
    if (!run.cardActivityId) {
      log.warn('run has no card to update');
      return;
    }
    const posted = await this.#services.poster.updateCard(run.conversation, run.cardActivityId, card);
    if (posted.ok) return;
    log.warn({ status: posted.status, permanent: posted.permanent }, 'could not update the card');
    if (posted.permanent) {
      await this.#services.runs.patch(run.runId, { postFailure: `${posted.status ?? ''} ${posted.message}`.trim() });
      return;
    }
    // Worth retrying (a Teams outage longer than the poster's retries): fail this attempt, so BullMQ
    // tries the timer again with backoff and the retry posts the card (the state has already moved).
    throw new SetupError('TEAMS_POST_FAILED', `Teams did not take the card (${posted.status ?? 'no answer'}): the timer will try again.`, { retryable: true });
  }
}

export const NO_AGENT_ANSWER = 'AGENT_NO_ANSWER';

function noAgentAnswered(type: JobType, hint: string): RunError {
  return { code: NO_AGENT_ANSWER, message: `No on-premises agent answered within ${duration(jobTtlMs[type])}.`, hint };
}

/** Whether the run's current (final) state is the one this timer sets, rather than a report's or a click's. */
function madeByTimer(run: Run, timer: TimerKind): boolean {
  switch (timer) {
    case 'plan-timeout':
      return run.error?.code === NO_AGENT_ANSWER;
    case 'approval-expiry':
      return run.approval?.decision === 'expired';
    case 'start-timeout':
      return run.error?.code === 'JOB_NOT_STARTED';
  }
}

/** "15 minutes", "24 hours". */
export function duration(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes % 60 === 0 && minutes >= 120) return `${minutes / 60} hours`;
  if (minutes === 60) return '1 hour';
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
}
