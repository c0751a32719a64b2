import { TurnContext } from 'botbuilder';
import { toSetupError } from '../../../core/setup-error.ts';
import { newRunId } from '../../../jobs/job-options.ts';
import type { JobPayload } from '../../../jobs/job-types.ts';
import type { MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import type { AdaptiveCardJson } from '../../cards/common/card-kit.ts';
import { errorCard } from '../../cards/common/message-cards.ts';
import type { Run } from '../../runs/run-model.ts';
import type { RunKind } from '../../runs/run-kinds.ts';
import { jobTimeoutAt, scheduleTimer } from '../../runs/run-timers.ts';
import { describeError } from '../../user-facing-error.ts';
import { runKinds } from '../../runs/run-kinds.ts';

export interface StartRunSpec {
  kind: RunKind;
  /** The run id to use (chosen by the caller to claim something with it first); absent: a new one. */
  runId?: string;
  filter?: MailboxFilter;
  /** `cert rotate <file>`: the PFX file name (kept on the run for its cards). */
  certFile?: string;
  /** Runbook kinds: a dry run (`run setup --dry-run`, `profile show`, `tenant show`): shown, never approved. */
  dryRun?: boolean;
  /** The first card ("Planning…", "Checking…"). */
  firstCard: (run: Run) => AdaptiveCardJson | Promise<AdaptiveCardJson>;
  /** The job that moves the run on (plan or status). */
  job: (run: Run) => JobPayload;
}

/**
 * The common tail of the commands that start work: create the run (its state tells the relay what
 * to expect), reply with the first card and keep its id (so the relay can update it in place),
 * then schedule its timeout timer and enqueue the signed job. The order matters: the card id is
 * stored before any report can come, and the timer exists before the job does.
 */
export async function startRun(req: ActivityRequest, spec: StartRunSpec): Promise<Run | undefined> {
  const { runs, jobs, config, poster, timers, now } = req.services;
  const reference = TurnContext.getConversationReference(req.ctx.activity);
  // A status (or preflight) run has no plan: it runs at once.
  const immediate = runKinds[spec.kind].immediate;
  const run = await runs.create({
    runId: spec.runId ?? newRunId(),
    deployment: config.deployment,
    kind: spec.kind,
    state: immediate ? 'running' : 'planning',
    ...(spec.filter ? { filter: spec.filter } : {}),
    ...(spec.certFile !== undefined ? { certFile: spec.certFile } : {}),
    ...(spec.dryRun === true ? { dryRun: true } : {}),
    requester: req.from,
    conversation: JSON.parse(JSON.stringify(reference)) as Run['conversation'],
  });
  const log = req.log.child({ runId: run.runId });
  const failedState = immediate ? 'failed' : 'plan-failed';

  const posted = await poster.replyCard(req.ctx, await spec.firstCard(run));
  if (!posted.ok || !posted.id) {
    log.warn({ status: posted.ok ? undefined : posted.status }, 'could not post the first card; the run stops here');
    await runs.transition(run.runId, [run.state], failedState, {
      error: { code: 'TEAMS_POST_FAILED', message: 'The bot could not post its card in this conversation.' },
    });
    return undefined;
  }
  await runs.patch(run.runId, { cardActivityId: posted.id });

  const job = spec.job(run);
  try {
    // The timer first: if no agent answers before the job expires, it says so on the card. It acts
    // only on a run still waiting, so scheduling it before the job is harmless; a job enqueued
    // without it could leave the card waiting forever.
    await scheduleTimer(timers, log, run.runId, 'plan-timeout', jobTimeoutAt(job.type, now()));
    const { jobId } = await jobs.dispatch(job);
    log.info({ jobId }, 'job enqueued');
  } catch (error) {
    log.error({ err: error }, 'could not start the run');
    const message = describeError(error);
    await runs.transition(run.runId, [run.state], failedState, { error: { code: toSetupError(error).code, message } }).catch((e: unknown) => {
      log.warn({ err: e }, 'could not record the failure on the run');
    });
    await poster.updateCard(run.conversation, posted.id, errorCard('Could not start', `${message} Nothing was changed.`));
    return undefined;
  }
  return (await runs.get(run.runId)) ?? run;
}
