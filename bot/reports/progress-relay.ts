import { DelayedError, UnrecoverableError, type Job, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/logger.ts';
import { toSetupError } from '../../core/setup-error.ts';
import { reportQueueName } from '../../jobs/deployment.ts';
import type { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { attemptOfReportSeq, verifyReport } from '../../jobs/job-options.ts';
import type { JobResult, Report } from '../../jobs/job-types.ts';
import { loadRun, type BotServices } from '../bot-services.ts';
import { startBotWorker, withCardLock } from '../bot-worker.ts';
import { touchesRegistration } from '../runs/cert-rules.ts';
import { finalStates, type Run } from '../runs/run-model.ts';
import { certPlanResult, certRollbackResult, certRotateResult, certStatusResult } from './cert-reports.ts';
import { failedReport } from './failed-report.ts';
import { endedCard, progressCard } from './family-cards.ts';
import { FinalCards } from './final-cards.ts';
import { planResult, statusResult, workResult } from './mailbox-reports.ts';
import type { ReportContext } from './report-context.ts';
import { isAttemptJob, jobTypeFits, stepsOf } from './report-rules.ts';
import { preflightResult, setupPlanResult, setupRunResult } from './runbook-reports.ts';

/**
 * Turns the agent's reports into card updates. A BullMQ worker on the reports queue: each report
 * goes to exactly one bot instance, so with several instances each update is still posted once.
 *
 * - bad signature / wrong deployment: logged and dropped (UnrecoverableError, no retry)
 * - plan result: planning → awaiting-approval, the card becomes the plan card with buttons, and
 *   the approval-expiry timer is scheduled (run-timers.ts)
 * - status result: the status card with counts
 * - started / progress: the run card updated in place, at most once per CARD_UPDATE_INTERVAL_MS
 *   per run; a report that comes too soon stores its progress and is delayed (moveToDelayed +
 *   DelayedError) so the newest progress is posted when the interval has passed; reports older
 *   than what was posted are dropped
 * - result / failed: final run card (+ results card in the thread)
 * - certificate runs: cert-status → the certificate status card (a cert-watch run's result goes to
 *   the expiry watch, bot/cert-watch.ts, and has no card); cert-plan → the rotation plan card, or
 *   "cannot rotate" when blocked; cert-rotate progress → the run card with its steps; rotated →
 *   final card + results card; a failed step or verification-failed → halted (Resume / Roll back);
 *   cert-rollback → rolled back, or failed with what to do next (a rollback that failed before its
 *   register-crm ran changed nothing: its rotation is halted again, RunStore.rollbackFailed, and its
 *   card offers Resume / Roll back again). A report showing register-crm running, done or failed
 *   sets the run's sticky registrationTouched flag (Roll back, not Abandon). A halted run is not final: the
 *   reports of its resumed attempt (seqs above the earlier attempts', jobs/job-options.ts
 *   reportSeqFor) are posted; a report of an earlier attempt is dropped.
 * - the runbook (docs/runbook.md): preflight → the checks card; setup-plan → the dry-run card
 *   (succeeded), blocked (plan-failed), nothing to change (succeeded) or the plan card
 *   (awaiting-approval, approval-expiry timer); setup-run progress → the run card with its steps;
 *   result → succeeded + results card (which says so when a cancel came after the last step); a
 *   failed step → halted (Retry step, Cancel); cancelled when the agent stopped on the run's cancel
 *   key (CANCELLED) or the run failed after a cancel was asked; failed (not halted, the certificate
 *   slot released) when the error is not about a step (PLAN_CHANGED, TWO_PERSON_RULE, no failed
 *   step). A `setup` run reaching a final state releases the deployment's cert-active key. Results and failures are appended to the audit log.
 *
 * Routing only: the handlers are one file per job family (mailbox-reports.ts, cert-reports.ts,
 * runbook-reports.ts, failed-report.ts), the final cards are posted by final-cards.ts, and which card
 * of its family a run shows is family-cards.ts.
 *
 * Every card write of a run holds the run's card lock (RunStore.acquireCardLock), taken before the
 * report changes anything: a report that finds it held is delayed and comes back, so a slow progress
 * update (429 retries) cannot land after the final card. A final card Teams did not take (outage
 * longer than the poster's retries) throws before it is marked posted, so BullMQ delivers the report
 * again with backoff; the results card is recorded apart (resultsSentSeq) and sent once.
 */
export interface ProgressRelayOptions {
  services: BotServices;
  connection: Redis;
  signer: EnvelopeSigner;
  concurrency?: number;
}

type ResultHandlers = { [T in JobResult['type']]: (ctx: ReportContext, run: Run, report: Report, result: Extract<JobResult, { type: T }>, log: Logger) => Promise<void> };

/** Each result type to its handler (a new job type: one handler in its family's file, one row here). */
const resultHandlers: ResultHandlers = {
  plan: planResult,
  status: statusResult,
  approve: workResult,
  test: workResult,
  'cert-status': certStatusResult,
  'cert-plan': certPlanResult,
  'cert-rotate': certRotateResult,
  'cert-rollback': certRollbackResult,
  preflight: preflightResult,
  'setup-plan': setupPlanResult,
  'setup-run': setupRunResult,
};

function handleResult<T extends JobResult['type']>(ctx: ReportContext, run: Run, report: Report, result: Extract<JobResult, { type: T }>, log: Logger): Promise<void> {
  return resultHandlers[result.type](ctx, run, report, result, log);
}

export class ProgressRelay {
  readonly #services: BotServices;
  readonly #signer: EnvelopeSigner;
  readonly #log: Logger;
  readonly #worker: Worker;
  readonly #ctx: ReportContext;

  constructor(options: ProgressRelayOptions) {
    this.#services = options.services;
    this.#signer = options.signer;
    this.#ctx = { services: options.services, final: new FinalCards(options.services) };
    this.#log = options.services.logger.child({ component: 'progress-relay' });
    const { config } = options.services;
    this.#worker = startBotWorker(
      { queueName: reportQueueName(config.deployment), connection: options.connection, prefix: config.redisPrefix, concurrency: options.concurrency ?? 8, log: this.#log, what: 'report' },
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
    let report: Report;
    try {
      report = verifyReport(this.#signer, job.data);
    } catch (error) {
      const e = toSetupError(error);
      this.#log.warn({ reportJobId: job.id, code: e.code, err: e.message }, 'dropping a report that fails verification');
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }
    const log = this.#log.child({ reportJobId: job.id, runId: report.runId, seq: report.seq, event: report.event.kind, jobType: report.jobType });
    if (report.deployment !== this.#services.config.deployment) {
      log.warn({ deployment: report.deployment }, 'dropping a report for another deployment');
      throw new UnrecoverableError('report for another deployment');
    }
    const run = await loadRun(this.#services, report.runId, log);
    if (!run) {
      log.warn('dropping a report for an unknown run');
      return;
    }
    if (!jobTypeFits(run, report)) {
      log.warn({ kind: run.kind, state: run.state }, 'dropping a report whose job type does not fit the run');
      return;
    }
    if (isAttemptJob(report) && !run.registrationTouched && touchesRegistration(stepsOf(report))) {
      // Sticky, whatever becomes of this report (an earlier attempt's, one that no longer fits the
      // state): register-crm ran, so CRM's registration may have changed. The step-storing writes
      // set it too, in the same step as the steps.
      await this.#services.runs.markRegistrationTouched(run.runId);
    }
    if (isAttemptJob(report) && attemptOfReportSeq(report.seq) < run.attempt) {
      log.info({ attempt: run.attempt, reportAttempt: attemptOfReportSeq(report.seq) }, 'dropping a report of an earlier attempt of a resumed run');
      return;
    }
    const held = await withCardLock(this.#services.runs, run.runId, job, token, log, () => this.#handle(job, token, run, report, log));
    if (!held) {
      log.warn('the card lock expired while this report held it');
      await this.#repostIfEnded(run.runId, log);
    }
  }

  async #handle(job: Job, token: string | undefined, run: Run, report: Report, log: Logger): Promise<void> {
    const event = report.event;
    switch (event.kind) {
      case 'started':
      case 'progress':
        return this.#progress(job, token, run, report, log);
      case 'result':
        return handleResult(this.#ctx, run, report, event.result, log);
      case 'failed':
        return failedReport(this.#ctx, run, report, event.error, event.steps, log);
    }
  }

  /**
   * The lock outlived its TTL (a write slower than the poster's worst case): another writer may have
   * posted the final card meanwhile and this write landed after it. Post the final card again.
   */
  async #repostIfEnded(runId: string, log: Logger): Promise<void> {
    const latest = await this.#services.runs.get(runId);
    if (!latest?.cardActivityId || !(finalStates.includes(latest.state) || latest.state === 'halted') || latest.finalPostedSeq < 0) return;
    await this.#ctx.final.update(latest, await endedCard(this.#services, latest), log);
  }

  async #progress(job: Job, token: string | undefined, run: Run, report: Report, log: Logger): Promise<void> {
    const { runs, config } = this.#services;
    if (report.event.kind === 'started') {
      await runs.transition(run.runId, ['approved'], 'running');
    }
    const progress = report.event.kind === 'progress' ? report.event.progress : undefined;
    const decision = await runs.relayProgress(run.runId, report.seq, progress, config.cardUpdateIntervalMs);
    switch (decision.action) {
      case 'missing':
      case 'stale':
        log.debug({ decision: decision.action }, 'progress not posted (older than what was posted, or the run has ended)');
        return;
      case 'wait': {
        log.debug({ waitMs: decision.waitMs }, 'progress too soon after the last update: delayed');
        await job.moveToDelayed(Date.now() + decision.waitMs, token);
        throw new DelayedError();
      }
      case 'post': {
        const latest = await runs.get(run.runId);
        if (!latest?.cardActivityId) return;
        await this.#ctx.final.update(latest, progressCard(latest), log);
        return;
      }
    }
  }
}
