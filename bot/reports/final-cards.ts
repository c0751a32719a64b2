import type { Logger } from '../../core/logger.ts';
import { SetupError } from '../../core/setup-error.ts';
import type { Report } from '../../jobs/job-types.ts';
import type { BotServices } from '../bot-services.ts';
import type { AdaptiveCardJson } from '../cards/common/card-kit.ts';
import type { Run, RunState, TransitionOutcome } from '../runs/run-model.ts';
import type { PostOutcome } from '../teams-poster.ts';

/**
 * The end of every report handler: the transition a final report made (or a redelivery of it) is
 * settled once, then its final run card (and results card, once) is posted and marked posted.
 *
 *   const moved = await runs.transition(…);
 *   const latest = await ctx.final.settle(run, report, moved, to, log);
 *   if (!latest) return;
 *   await ctx.final.postFinal(latest, report, card, log, results);
 */
export class FinalCards {
  readonly #services: BotServices;

  constructor(services: BotServices) {
    this.#services = services;
  }

  /** The run as it is now when this report's final cards are to be posted (shouldPostFinal), else undefined. */
  async settle(run: Run, report: Report, moved: TransitionOutcome, to: RunState, log: Logger): Promise<Run | undefined> {
    if (!(await this.shouldPostFinal(run, report, moved, to, log))) return undefined;
    return this.#services.runs.get(run.runId);
  }

  /** The audit entry of a result or a failure the relay handled (the agent did the work; who asked is in the run). */
  async audit(run: Run, report: Report, outcome: string, log: Logger): Promise<void> {
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
   * The final cards are posted once: by the report that made the transition, or again by the same
   * report when it is redelivered before they were marked posted (the bot stopped in between).
   */
  async shouldPostFinal(run: Run, report: Report, moved: TransitionOutcome, to: RunState, log: Logger): Promise<boolean> {
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
  async postFinal(run: Run, report: Report, card: AdaptiveCardJson, log: Logger, results?: AdaptiveCardJson): Promise<void> {
    const { runs, poster } = this.#services;
    const updated = await this.update(run, card, log);
    let sent: PostOutcome | undefined;
    if (results && run.resultsSentSeq < report.seq) {
      sent = await poster.sendCard(run.conversation, results);
      if (sent.ok) await runs.markResultsSent(run.runId, report.seq);
      else await this.noteFailure(run, sent, log);
    }
    const retry = [updated, sent].find((o) => o !== undefined && !o.ok && !o.permanent);
    if (retry && !retry.ok) {
      throw new SetupError('TEAMS_POST_FAILED', `Teams did not take the final card (${retry.status ?? 'no answer'}): the report will be delivered again.`, { retryable: true });
    }
    await runs.markFinalPosted(run.runId, report.seq);
  }

  async update(run: Run, card: AdaptiveCardJson, log: Logger): Promise<PostOutcome | undefined> {
    if (!run.cardActivityId) {
      log.warn('run has no card to update');
      return undefined;
    }
    const posted = await this.#services.poster.updateCard(run.conversation, run.cardActivityId, card);
    await this.noteFailure(run, posted, log);
    return posted;
  }

  async noteFailure(run: Run, posted: PostOutcome, log: Logger): Promise<void> {
    if (posted.ok) return;
    log.warn({ status: posted.status, permanent: posted.permanent }, 'could not post to Teams');
    if (posted.permanent) {
      await this.#services.runs.patch(run.runId, { postFailure: `${posted.status ?? ''} ${posted.message}`.trim() });
    }
  }
}
