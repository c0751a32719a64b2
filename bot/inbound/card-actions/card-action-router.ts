import { z } from 'zod';
import type { Logger } from '../../../core/logger.ts';
import { runIdSchema } from '../../../jobs/job-types.ts';
import { loadRun, type ActivityRequest } from '../../bot-services.ts';
import { recordClick } from '../../audit-trail.ts';
import { verbs, type Verb } from '../../cards/common/card-kit.ts';
import { cancelRun, resumeRun, type CardActionReply } from '../../runs/run-control.ts';
import { kindOf, type RunKindSpec } from '../../runs/run-kinds.ts';
import type { Run } from '../../runs/run-model.ts';
import { describeError } from '../../user-facing-error.ts';
import { abandon } from './abandon.ts';
import { confirmChecklist } from './confirm-checklist.ts';
import { decide } from './decide.ts';
import { requestRollback } from './rollback.ts';
import { UNKNOWN_RUN } from './unknown-run.ts';

/** Card data is client-controlled: only the run id is read from it, everything else from Redis. */
const cardDataSchema = z.object({ runId: runIdSchema }).passthrough();

/** What the invoke answers: a card (replaces the clicker's view) or a short message. */
export type { CardActionReply };

interface RunVerbHandler {
  /** Whether the verb applies to a run of this kind (else the click is answered as for an unknown run). */
  fits(kind: RunKindSpec): boolean;
  handle(req: ActivityRequest, run: Run, data: unknown, log: Logger): Promise<CardActionReply>;
}

/**
 * The verbs on a run's cards, one file each (resume and cancel are bot/runs/run-control.ts, shared
 * with the typed `resume` / `cancel`). cert.start-rotation is the certificate watch's
 * (bot/cert-watch/), mailboxes.primary-org is primary-org-click.ts: neither acts on an existing run.
 */
const runVerbHandlers = {
  [verbs.approve]: { fits: (k) => k.approve !== undefined, handle: (req, run, _data, log) => decide(req, verbs.approve, run, log) },
  [verbs.reject]: { fits: (k) => k.reject !== undefined, handle: (req, run, _data, log) => decide(req, verbs.reject, run, log) },
  // Resume of a halted rotation, Retry step of a halted runbook run (verbs.retryStep is the same verb).
  [verbs.resume]: { fits: (k) => k.resumable, handle: (req, run, _data, log) => resumeRun(req, run, log) },
  [verbs.cancel]: { fits: () => true, handle: (req, run, _data, log) => cancelRun(req, run, log) },
  [verbs.confirmChecklist]: { fits: (k) => k.needsChecklist, handle: (req, run, data, log) => confirmChecklist(req, run, data, log) },
  [verbs.rollback]: { fits: (k) => k.rollsForward, handle: (req, run, _data, log) => requestRollback(req, run, log) },
  [verbs.abandon]: { fits: (k) => k.rollsForward, handle: (req, run, _data, log) => abandon(req, run, log) },
} as const satisfies Record<string, RunVerbHandler>;

/** The verbs handleCardAction answers. */
export type RunVerb = keyof typeof runVerbHandlers;
export const runVerbs = Object.keys(runVerbHandlers) as RunVerb[];

function handlerOf(verb: Verb): RunVerbHandler | undefined {
  return (runVerbHandlers as Partial<Record<Verb, RunVerbHandler>>)[verb];
}

/**
 * Approve / Reject (Confirm / Cancel for tests), for a halted rotation Resume / Roll back / Abandon,
 * for the runbook Confirm checklist (`run setup`, requester only), Retry step (= Resume) and Cancel.
 * Reload the run, re-check the clicker's rights by Entra object id, then a compare-and-set decides:
 * the first valid click wins, a second click, a replayed invoke or another bot instance sees the
 * decided card. The job is enqueued with its deterministic id and nothing waits for the work (the
 * invoke is answered within a few seconds).
 */
export async function handleCardAction(req: ActivityRequest, verb: Verb, data: unknown): Promise<CardActionReply> {
  let reply: CardActionReply;
  let failed = false;
  try {
    reply = await act(req, verb, data);
  } catch (error) {
    // Redis away (the producer connection fails within ~2 s), or a bug: answer the invoke in time
    // with what to do rather than letting Teams show a generic failure.
    req.log.error({ err: error, verb }, 'card action failed');
    reply = describeError(error);
    failed = true;
  }
  // Audited once the action is decided (a string reply is a refusal); never breaks the click.
  await recordClick(req, verb, data, reply, failed);
  return reply;
}

async function act(req: ActivityRequest, verb: Verb, data: unknown): Promise<CardActionReply> {
  const parsed = cardDataSchema.safeParse(data);
  if (!parsed.success) {
    req.log.warn('card action without a valid run id');
    return 'This card is not valid. Run the command again.';
  }
  const runId = parsed.data.runId;
  const log = req.log.child({ runId, verb });
  // Every action on a run needs an operator or an approver (each action's own right is checked
  // after): a stranger with a run id learns nothing, not even whether the run exists.
  // Approve and Reject say who may approve (approvers); every other action says who may run commands.
  const member = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!member.allowed) {
    const reason = verb === verbs.approve || verb === verbs.reject ? req.services.authorizer.canApprove(req.from.aadObjectId) : member;
    log.info('card action refused: may not run commands');
    return reason.allowed ? member.reason : reason.reason;
  }
  const run = await loadRun(req.services, runId, log);
  if (!run) {
    log.info('card action for an unknown run');
    return UNKNOWN_RUN;
  }
  const handler = handlerOf(verb);
  if (handler?.fits(kindOf(run))) return handler.handle(req, run, data, log);
  log.info({ kind: run.kind }, 'card action that does not fit the run');
  return UNKNOWN_RUN;
}
