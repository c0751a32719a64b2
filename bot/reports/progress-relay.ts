import { DelayedError, UnrecoverableError, type Job, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/logger.ts';
import { SetupError, toSetupError } from '../../core/setup-error.ts';
import { reportQueueName } from '../../jobs/deployment.ts';
import type { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { attemptOfReportSeq, verifyReport } from '../../jobs/job-options.ts';
import type { ApproveResult, CertPlanResult, CertRollbackResult, CertRotateResult, CertStatusResult, PlanResult, PreflightResult, Report, SetupPlanResult, SetupRunResult, StatusResult, TestResult } from '../../jobs/job-types.ts';
import type { StepState } from '../../jobs/cert-types.ts';
import { loadRun, readAgentSeen, type BotServices } from '../bot-services.ts';
import { startBotWorker, withCardLock } from '../bot-worker.ts';
import { handleCertWatchResult, recordCertWatchFailure } from '../cert-watch/cert-watch.ts';
import type { AdaptiveCardJson } from '../cards/common/card-kit.ts';
import { certPlanBlockedCard, certPlanCard, certPlanFailedCard } from '../cards/cert/cert-plan-card.ts';
import { certResultsCard, certRunCard, currentCertCard } from '../cards/cert/cert-run-card.ts';
import { certStatusCard, certStatusFailedCard } from '../cards/cert/cert-status-card.ts';
import { decidedCard, planCard, planFailedCard } from '../cards/mailboxes/plan-cards.ts';
import { resultsCard, runCard } from '../cards/mailboxes/run-cards.ts';
import { statusCard, statusFailedCard } from '../cards/mailboxes/status-card.ts';
import { preflightCard, preflightFailedCard } from '../cards/runbook/preflight-card.ts';
import { setupPlanCard, setupPlanFailedCard } from '../cards/runbook/setup-plan-card.ts';
import { currentSetupCard, setupResultsCard, setupRunCard } from '../cards/runbook/setup-run-card.ts';
import { refreshCertCard } from './cert-card-refresh.ts';
import { finalStates, type Run, type RunPatch, type RunState } from '../runs/run-model.ts';
import { kindOf } from '../runs/run-kinds.ts';
import { touchesRegistration } from '../runs/cert-rules.ts';
import { scheduleTimer } from '../runs/run-timers.ts';
import type { PostOutcome } from '../teams-poster.ts';
import { runErrorFromAgent } from '../user-facing-error.ts';

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

export class ProgressRelay {
  readonly #services: BotServices;
  readonly #signer: EnvelopeSigner;
  readonly #log: Logger;
  readonly #worker: Worker;

  constructor(options: ProgressRelayOptions) {
    this.#services = options.services;
    this.#signer = options.signer;
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
        switch (event.result.type) {
          case 'plan':
            return this.#planResult(run, report, event.result, log);
          case 'status':
            return this.#statusResult(run, report, event.result, log);
          case 'approve':
          case 'test':
            return this.#workResult(run, report, event.result, log);
          case 'cert-status':
            return this.#certStatusResult(run, report, event.result, log);
          case 'cert-plan':
            return this.#certPlanResult(run, report, event.result, log);
          case 'cert-rotate':
            return this.#certRotateResult(run, report, event.result, log);
          case 'cert-rollback':
            return this.#certRollbackResult(run, report, event.result, log);
          case 'preflight':
            return this.#preflightResult(run, report, event.result, log);
          case 'setup-plan':
            return this.#setupPlanResult(run, report, event.result, log);
          case 'setup-run':
            return this.#setupRunResult(run, report, event.result, log);
        }
        return;
      case 'failed':
        return this.#failed(run, report, event.error, event.steps, log);
    }
  }

  /**
   * The lock outlived its TTL (a write slower than the poster's worst case): another writer may have
   * posted the final card meanwhile and this write landed after it. Post the final card again.
   */
  async #repostIfEnded(runId: string, log: Logger): Promise<void> {
    const latest = await this.#services.runs.get(runId);
    if (!latest?.cardActivityId || !(finalStates.includes(latest.state) || latest.state === 'halted') || latest.finalPostedSeq < 0) return;
    if (isSetupKind(latest)) {
      await this.#update(latest, currentSetupCard(latest), log);
      return;
    }
    if (isCertKind(latest)) {
      await this.#update(latest, currentCertCard(latest), log);
      return;
    }
    const card = kindOf(latest).immediate
      ? latest.result?.type === 'status'
        ? statusCard(latest, await readAgentSeen(this.#services), latest.result)
        : statusFailedCard(latest, await readAgentSeen(this.#services))
      : latest.state === 'plan-failed'
        ? planFailedCard(latest)
        : latest.state === 'rejected' || latest.state === 'expired'
          ? decidedCard(latest)
          : latest.state === 'succeeded' && !latest.result && latest.plan?.type === 'plan'
            ? planCard(latest, latest.plan)
            : runCard(latest);
    await this.#update(latest, card, log);
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
        await this.#update(latest, isSetupKind(latest) ? setupRunCard(latest) : isCertKind(latest) ? certRunCard(latest) : runCard(latest), log);
        return;
      }
    }
  }

  async #planResult(run: Run, report: Report, plan: PlanResult, log: Logger): Promise<void> {
    const { runs, config, now } = this.#services;
    const to: RunState = plan.toChange === 0 ? 'succeeded' : 'awaiting-approval';
    const expiresAt = now() + config.approvalTtlMinutes * 60_000;
    if (to === 'awaiting-approval' && run.state === 'planning') {
      // The safety net first: it expires the plan card for everyone when nobody decides in time. It
      // acts only on a run still awaiting approval, so scheduling it before the transition is
      // harmless; if it cannot be scheduled, nothing has changed and BullMQ delivers the report again.
      await scheduleTimer(this.#services.timers, log, run.runId, 'approval-expiry', expiresAt);
    }
    const moved = await runs.transition(run.runId, ['planning'], to, { plan, expiresAt, lastPostedSeq: report.seq });
    if (!(await this.#shouldPostFinal(run, report, moved, to, log))) return;
    const latest = await runs.get(run.runId);
    if (latest?.plan?.type !== 'plan') return;
    await this.#postFinal(latest, report, planCard(latest, latest.plan), log);
  }

  async #statusResult(run: Run, report: Report, result: StatusResult, log: Logger): Promise<void> {
    const { runs } = this.#services;
    const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
    if (!(await this.#shouldPostFinal(run, report, moved, 'succeeded', log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    await this.#postFinal(latest, report, statusCard(latest, await readAgentSeen(this.#services), result), log);
  }

  async #workResult(run: Run, report: Report, result: ApproveResult | TestResult, log: Logger): Promise<void> {
    const { runs } = this.#services;
    const moved = await runs.transition(run.runId, ['approved', 'running'], 'succeeded', { result, lastPostedSeq: report.seq });
    if (!(await this.#shouldPostFinal(run, report, moved, 'succeeded', log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    await this.#postFinal(latest, report, runCard(latest), log, resultsCard(latest, result));
    log.info({ result: { type: result.type, failed: result.failed } }, 'run finished');
  }

  async #failed(run: Run, report: Report, error: { code: string; message: string; hint?: string | undefined }, steps: StepState[] | undefined, log: Logger): Promise<void> {
    const { runs } = this.#services;
    const e = runErrorFromAgent(error, run.runId);
    if (e.code !== error.code || e.message !== error.message) log.warn({ code: error.code, err: error.message }, 'the agent reported an unexpected error');
    const planning = report.jobType === 'plan' || report.jobType === 'cert-plan' || report.jobType === 'setup-plan';
    const immediate = report.jobType === 'status' || report.jobType === 'cert-status' || report.jobType === 'preflight';
    const from: RunState[] = planning ? ['planning'] : immediate ? ['running'] : ['approved', 'running'];
    // A failed rotation or runbook step halts the run for a person (Resume / Retry step); a runbook
    // run the agent stopped on its cancel key, or that failed after someone asked to cancel it, is
    // cancelled; a runbook run that failed outside its steps (the plan no longer holds, the two-person
    // rule, anything before the first step) fails: a retry could only fail the same way, and a halted
    // run would keep the certificate slot. Everything else fails.
    const setupRun = report.jobType === 'setup-run';
    const cancelled = setupRun && (e.code === 'CANCELLED' || run.cancelRequestedBy !== undefined);
    const halts = report.jobType === 'cert-rotate' || (setupRun && isStepFailure(e.code, steps));
    const to: RunState = planning ? 'plan-failed' : cancelled ? 'cancelled' : halts ? 'halted' : 'failed';
    const patch: RunPatch = { error: e, lastPostedSeq: report.seq, ...(steps ? { steps } : {}) };
    const moved = kindOf(run).rollsBack && run.parentRunId
      ? await runs.rollbackFailed(run.runId, run.parentRunId, run.deployment, from, patch)
      : await runs.transition(run.runId, from, to, patch, certChangeOptions(run));
    if (!(await this.#shouldPostFinal(run, report, moved, to, log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    if (moved.ok) await this.#audit(latest, report, `failed: ${e.code}${to === 'halted' ? ' (halted)' : to === 'cancelled' ? ' (cancelled)' : ''}`, log);
    if (kindOf(latest).watch) {
      // The watch has no card of its own: the next scheduled check tries again; after several
      // failed checks in a row it says so in the watch conversation (once a day).
      log.warn({ code: e.code, err: e.message }, 'certificate watch check failed');
      await recordCertWatchFailure(this.#services, latest, e, log);
      await runs.markFinalPosted(run.runId, report.seq);
      return;
    }
    let card: AdaptiveCardJson;
    if (report.jobType === 'plan') {
      card = planFailedCard(latest);
    } else if (report.jobType === 'status') {
      card = statusFailedCard(latest, await readAgentSeen(this.#services));
    } else if (report.jobType === 'cert-plan') {
      card = certPlanFailedCard(latest);
    } else if (report.jobType === 'cert-status') {
      card = certStatusFailedCard(latest);
    } else if (report.jobType === 'preflight') {
      card = preflightFailedCard(latest);
    } else if (report.jobType === 'setup-plan') {
      card = setupPlanFailedCard(latest);
    } else if (isSetupKind(latest)) {
      card = setupRunCard(latest);
    } else if (isCertKind(latest)) {
      card = certRunCard(latest);
    } else {
      card = runCard(latest);
    }
    await this.#postFinal(latest, report, card, log);
    log.info({ code: e.code, state: to }, to === 'halted' ? 'run halted' : to === 'cancelled' ? 'run cancelled' : 'run failed');
    await this.#rotationBack(latest, log);
  }

  async #certStatusResult(run: Run, report: Report, result: CertStatusResult, log: Logger): Promise<void> {
    const { runs } = this.#services;
    if (kindOf(run).watch) {
      if (run.state !== 'running') {
        log.info({ state: run.state }, 'certificate watch result for a run that has ended: dropped');
        return;
      }
      // The watch posts its rotation-due card itself (once per threshold, SET NX), then the run ends.
      await handleCertWatchResult(this.#services, run, result, log);
      const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
      if (moved.ok) await runs.markFinalPosted(run.runId, report.seq);
      log.info({ daysLeft: result.daysLeft, agree: result.agree }, 'certificate watch check finished');
      return;
    }
    const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
    if (!(await this.#shouldPostFinal(run, report, moved, 'succeeded', log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    await this.#postFinal(latest, report, certStatusCard(latest, result), log);
  }

  async #certPlanResult(run: Run, report: Report, plan: CertPlanResult, log: Logger): Promise<void> {
    const { runs, config, now } = this.#services;
    const to: RunState = plan.blocked ? 'plan-failed' : 'awaiting-approval';
    const expiresAt = now() + config.approvalTtlMinutes * 60_000;
    if (to === 'awaiting-approval' && run.state === 'planning') {
      await scheduleTimer(this.#services.timers, log, run.runId, 'approval-expiry', expiresAt);
    }
    const moved = await runs.transition(run.runId, ['planning'], to, {
      plan,
      steps: plan.steps,
      lastPostedSeq: report.seq,
      ...(plan.blocked ? {} : { expiresAt }),
    });
    if (!(await this.#shouldPostFinal(run, report, moved, to, log))) return;
    const latest = await runs.get(run.runId);
    if (latest?.plan?.type !== 'cert-plan') return;
    await this.#postFinal(latest, report, plan.blocked ? certPlanBlockedCard(latest, latest.plan) : certPlanCard(latest, latest.plan), log);
    log.info({ blocked: plan.blocked, newThumbprint: plan.next.thumbprint }, 'rotation planned');
  }

  async #certRotateResult(run: Run, report: Report, result: CertRotateResult, log: Logger): Promise<void> {
    const { runs } = this.#services;
    const to: RunState = result.outcome === 'rotated' ? 'succeeded' : 'halted';
    const moved = await runs.transition(run.runId, ['approved', 'running'], to, { result, steps: result.steps, lastPostedSeq: report.seq }, certChangeOptions(run));
    if (!(await this.#shouldPostFinal(run, report, moved, to, log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    await this.#postFinal(latest, report, certRunCard(latest), log, to === 'succeeded' ? certResultsCard(latest, result) : undefined);
    log.info({ outcome: result.outcome, attempt: latest.attempt }, to === 'succeeded' ? 'certificate rotated' : 'rotation halted: verification failed');
  }

  async #certRollbackResult(run: Run, report: Report, result: CertRollbackResult, log: Logger): Promise<void> {
    const { runs } = this.#services;
    const ok = result.outcome === 'rolled-back';
    const to: RunState = ok ? 'succeeded' : 'failed';
    const patch: RunPatch = {
      result,
      steps: result.steps,
      lastPostedSeq: report.seq,
      ...(ok
        ? {}
        : {
            error: {
              code: 'VERIFICATION_FAILED',
              message: 'The old certificate is the S2S token issuer again, but the verification mailboxes still did not pass Test & Enable.',
              hint: 'Fix the causes listed below (each says what to do), then test the mailboxes again.',
            },
          }),
    };
    const from: RunState[] = ['approved', 'running'];
    // A failed rollback whose register-crm never ran changed nothing: its rotation is halted again.
    const moved = !ok && run.parentRunId
      ? await runs.rollbackFailed(run.runId, run.parentRunId, run.deployment, from, patch)
      : await runs.transition(run.runId, from, to, patch, certChangeOptions(run));
    if (!(await this.#shouldPostFinal(run, report, moved, to, log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    await this.#postFinal(latest, report, certRunCard(latest), log, certResultsCard(latest, result));
    log.info({ outcome: result.outcome }, 'rollback finished');
    if (!ok) await this.#rotationBack(latest, log);
  }

  async #preflightResult(run: Run, report: Report, result: PreflightResult, log: Logger): Promise<void> {
    const { runs } = this.#services;
    const moved = await runs.transition(run.runId, ['running'], 'succeeded', { result, lastPostedSeq: report.seq });
    if (!(await this.#shouldPostFinal(run, report, moved, 'succeeded', log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    if (moved.ok) await this.#audit(latest, report, result.ok ? 'ok: every check passed' : `not ready: ${result.checks.filter((c) => c.status === 'failed').map((c) => c.id).join(', ')} failed`, log);
    await this.#postFinal(latest, report, preflightCard(latest, result), log);
  }

  /**
   * The runbook's plan: a dry run ends with it (succeeded, no buttons); a blocked plan is plan-failed
   * (each blocker with its fix); nothing to change ends the run (succeeded); otherwise it awaits
   * approval (the expiry timer first, as for every plan).
   */
  async #setupPlanResult(run: Run, report: Report, plan: SetupPlanResult, log: Logger): Promise<void> {
    const { runs, config, now } = this.#services;
    const to: RunState = run.dryRun ? 'succeeded' : plan.blocked ? 'plan-failed' : plan.changes === 0 ? 'succeeded' : 'awaiting-approval';
    const expiresAt = now() + config.approvalTtlMinutes * 60_000;
    if (to === 'awaiting-approval' && run.state === 'planning') {
      await scheduleTimer(this.#services.timers, log, run.runId, 'approval-expiry', expiresAt);
    }
    const steps = plan.steps.map((s) => ({ id: s.id, state: s.state, detail: s.detail }));
    const moved = await runs.transition(run.runId, ['planning'], to, {
      plan,
      steps,
      lastPostedSeq: report.seq,
      ...(to === 'awaiting-approval' ? { expiresAt } : {}),
    });
    if (!(await this.#shouldPostFinal(run, report, moved, to, log))) return;
    const latest = await runs.get(run.runId);
    if (latest?.plan?.type !== 'setup-plan') return;
    if (moved.ok) {
      const outcome = run.dryRun
        ? `dry run: ${plan.changes} step(s) would change`
        : plan.blocked
          ? `blocked: ${plan.blockers.length} blocker(s)`
          : plan.changes === 0
            ? 'nothing to change'
            : `planned: ${plan.changes} step(s) to change, awaiting approval`;
      await this.#audit(latest, report, outcome, log);
    }
    await this.#postFinal(latest, report, setupPlanCard(latest, latest.plan), log);
    log.info({ scope: plan.scope, changes: plan.changes, blocked: plan.blocked, dryRun: run.dryRun === true }, 'runbook planned');
  }

  async #setupRunResult(run: Run, report: Report, result: SetupRunResult, log: Logger): Promise<void> {
    const { runs } = this.#services;
    const moved = await runs.transition(run.runId, ['approved', 'running'], 'succeeded', { result, steps: result.steps, lastPostedSeq: report.seq }, certChangeOptions(run));
    if (!(await this.#shouldPostFinal(run, report, moved, 'succeeded', log))) return;
    const latest = await runs.get(run.runId);
    if (!latest) return;
    if (moved.ok) {
      const tested = result.testReport ? `; Test & Enable ${result.testReport.succeeded} succeeded, ${result.testReport.failed} failed` : '';
      await this.#audit(latest, report, `succeeded: ${result.changed.length === 0 ? 'nothing to change' : `changed ${result.changed.join(', ')}`}${tested}`, log);
    }
    await this.#postFinal(latest, report, setupRunCard(latest), log, setupResultsCard(latest, result));
    log.info({ changed: result.changed, attempt: latest.attempt }, 'runbook run finished');
  }

  /** The audit entry of a result or a failure the relay handled (the agent did the work; who asked is in the run). */
  async #audit(run: Run, report: Report, outcome: string, log: Logger): Promise<void> {
    try {
      await this.#services.audit.append({
        deployment: run.deployment,
        actor: 'agent',
        kind: 'result',
        what: `${report.jobType} result (${run.kind}${run.attempt > 1 ? `, attempt ${run.attempt}` : ''})`,
        runId: run.runId,
        outcome,
      });
    } catch (error) {
      log.warn({ err: error }, 'could not append to the audit log');
    }
  }

  /**
   * A failed rollback that never touched CRM's registration put its rotation back to halted (in the
   * same step as its failure, RunStore.rollbackFailed): the rotation's card offers Resume, Roll back
   * (and Abandon as the rules say) again. Also on a redelivered report (the card is the current one).
   */
  async #rotationBack(rollback: Run, log: Logger): Promise<void> {
    if (!kindOf(rollback).rollsBack || !rollback.parentRunId || rollback.state !== 'failed') return;
    const rotation = await this.#services.runs.get(rollback.parentRunId);
    if (rotation?.state !== 'halted' || rotation.failedRollbackRunId !== rollback.runId) return;
    log.info({ rotationRunId: rotation.runId }, 'the rollback failed before changing CRM\'s registration: its rotation is halted again');
    await refreshCertCard(this.#services, rotation.runId, log, 10_000);
  }

  /**
   * The final cards are posted once: by the report that made the transition, or again by the same
   * report when it is redelivered before they were marked posted (the bot stopped in between).
   */
  async #shouldPostFinal(run: Run, report: Report, moved: Awaited<ReturnType<BotServices['runs']['transition']>>, to: RunState, log: Logger): Promise<boolean> {
    if (moved.ok) return true;
    if (moved.reason === 'conflict' && moved.current === to) {
      const latest = await this.#services.runs.get(run.runId);
      if (latest && latest.finalPostedSeq < report.seq && latest.lastPostedSeq === report.seq) return true;
    }
    log.info({ outcome: moved }, 'final report does not fit the run state: dropped');
    return false;
  }

  /**
   * Posts a final card (and the results card, once) and marks it posted. When Teams did not take a
   * card for a reason worth retrying (an outage longer than the poster's retries), it throws before
   * marking, so BullMQ delivers the report again with backoff and the redelivery posts what is
   * missing; a permanent refusal (403/404/413) is recorded on the run and not retried.
   */
  async #postFinal(run: Run, report: Report, card: AdaptiveCardJson, log: Logger, results?: AdaptiveCardJson): Promise<void> {
    const { runs, poster } = this.#services;
    const updated = await this.#update(run, card, log);
    let sent: PostOutcome | undefined;
    if (results && run.resultsSentSeq < report.seq) {
      sent = await poster.sendCard(run.conversation, results);
      if (sent.ok) await runs.markResultsSent(run.runId, report.seq);
      else await this.#noteFailure(run, sent, log);
    }
    const retry = [updated, sent].find((o) => o !== undefined && !o.ok && !o.permanent);
    if (retry && !retry.ok) {
      throw new SetupError('TEAMS_POST_FAILED', `Teams did not take the final card (${retry.status ?? 'no answer'}): the report will be delivered again.`, { retryable: true });
    }
    await runs.markFinalPosted(run.runId, report.seq);
  }

  async #update(run: Run, card: AdaptiveCardJson, log: Logger): Promise<PostOutcome | undefined> {
    if (!run.cardActivityId) {
      log.warn('run has no card to update');
      return undefined;
    }
    const posted = await this.#services.poster.updateCard(run.conversation, run.cardActivityId, card);
    await this.#noteFailure(run, posted, log);
    return posted;
  }

  async #noteFailure(run: Run, posted: PostOutcome, log: Logger): Promise<void> {
    if (posted.ok) return;
    log.warn({ status: posted.status, permanent: posted.permanent }, 'could not post to Teams');
    if (posted.permanent) {
      await this.#services.runs.patch(run.runId, { postFailure: `${posted.status ?? ''} ${posted.message}`.trim() });
    }
  }
}

/** Whether the report's job is one of the jobs of the run's kind (bot/runs/run-kinds.ts). */
function jobTypeFits(run: Run, report: Report): boolean {
  return kindOf(run).jobTypes.includes(report.jobType);
}

/** The step states a report carries (progress, failed report, rotation or rollback result). */
function stepsOf(report: Report): StepState[] | undefined {
  const event = report.event;
  switch (event.kind) {
    case 'progress':
      return event.progress.steps;
    case 'failed':
      return event.steps;
    case 'result':
      return event.result.type === 'cert-rotate' || event.result.type === 'cert-rollback' || event.result.type === 'setup-run' ? event.result.steps : undefined;
    default:
      return undefined;
  }
}

/** Errors about the run as a whole, never about one step: retrying the step cannot help. */
const notAboutAStep: readonly string[] = ['PLAN_CHANGED', 'TWO_PERSON_RULE'];

/**
 * Whether a failed `setup-run` report is a failed step (the run halts: fix it, Retry step): it
 * carries the step states with one of them failed, and its error is not about the run as a whole.
 */
function isStepFailure(code: string, steps: readonly StepState[] | undefined): boolean {
  // JOB_STALLED: the agent stopped during a step too often (BullMQ gave up on the job); the report
  // carries no step states, the run keeps the last ones it saw, and Retry step starts a new attempt.
  if (code === 'JOB_STALLED') return true;
  return !notAboutAStep.includes(code) && (steps ?? []).some((s) => s.state === 'failed');
}

/** Jobs that run again as attempt n + 1 (their reports' seqs say which attempt they belong to). */
function isAttemptJob(report: Report): boolean {
  return report.jobType === 'cert-rotate' || report.jobType === 'cert-rollback' || report.jobType === 'setup-run';
}

/** A rotation, rollback or `run setup` reaching a final state releases the deployment's cert-active key (same step). */
function certChangeOptions(run: Run): { releaseCertActive?: string } {
  return kindOf(run).certChange ? { releaseCertActive: run.deployment } : {};
}

/** The runbook's runs and preflight: their cards are bot/cards/setup-*.ts and preflight-card.ts. */
function isSetupKind(run: Run): boolean {
  return kindOf(run).family === 'runbook';
}

function isCertKind(run: Run): boolean {
  return kindOf(run).family === 'cert';
}
