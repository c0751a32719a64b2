import { z } from 'zod';
import type { MailboxFilter } from '../../jobs/mailbox-filter.ts';
import { MAX_STEPS, certPlanResultSchema, stepStateSchema, thumbprintSchema, type CertPlanResult, type StepState } from '../../jobs/cert-types.ts';
import { RUN_TTL_SECONDS, setupPlanResultSchema, type SetupPlanResult } from '../../jobs/runbook-types.ts';
import type { RunKind } from './run-kinds.ts';
import { planResultSchema, type JobResult, type PlanResult, type Progress } from '../../jobs/job-types.ts';

/**
 * The run: one record per command that does work (status, approve, test), kept in a Redis hash
 * `<prefix>:run:<runId>`. Every state change is a compare-and-set in a Lua script, so a double
 * click, a replayed invoke or a second bot instance cannot move a run twice.
 *
 *   approve/test: planning → awaiting-approval → approved → running → succeeded | failed
 *                 planning → plan-failed;  awaiting-approval → rejected | expired
 *   status:       running → succeeded | failed
 *   cert-status, cert-watch: running → succeeded | failed
 *   cert-rotate:  planning → awaiting-approval → approved → running → succeeded
 *                 planning → plan-failed;  awaiting-approval → rejected | expired
 *                 approved | running → halted;  halted → approved (resume: attempt + 1) | superseded (rollback approved)
 *   cert-rollback: awaiting-approval → approved → running → succeeded | failed;  → rejected | expired
 *   preflight:    running → succeeded | failed
 *   setup, profile, tenant, configure (the runbook, docs/runbook.md):
 *                 planning → awaiting-approval → approved → running → succeeded
 *                 planning → succeeded (a dry run, or nothing to change) | plan-failed (blocked)
 *                 awaiting-approval → rejected | expired;  approved | running → halted (a failed step)
 *                 halted → approved (Retry / `resume`: attempt + 1) | cancelled
 *                 planning | awaiting-approval → cancelled;  approved | running → cancelled once the
 *                 agent, seeing the run's cancel key (requestCancel), stops before its next step
 *                 A `setup` run holds the deployment's cert-active key like a rotation (it may change
 *                 the S2S certificate): claimed by approveCert, released when it reaches a final state.
 *
 * `halted` is not final (a person resumes or rolls back); `superseded` is. Roll back on a halted
 * rotation records a pending rollback (`rollbackRunId`): the rotation stays halted, and Resume and a
 * second Roll back are refused, until the rollback is approved (the rotation becomes superseded in
 * the same step) or rejected, withdrawn, expired or not started (the pending rollback is cleared).
 *
 * One certificate change at a time: `<prefix>:cert-active:<deployment>` holds the run id of the
 * rotation or rollback that is approved, running or halted. It is claimed with the approval CAS,
 * handed from a rotation to its rollback when the rollback is approved (and back when the rollback
 * never started or failed before changing CRM's registration), and released when that run reaches a
 * final state (all in the same Lua step).
 *
 * "Did this run change CRM's registration?" is a sticky flag, `registrationTouched`: set (never
 * cleared) in the same step that stores step states showing register-crm running, done or failed,
 * whichever attempt reported them. The step list itself is overwritten by every report (a resumed
 * attempt starts with every step pending), so it cannot answer that question.
 */
export const runStates = [
  'planning',
  'awaiting-approval',
  'approved',
  'running',
  'succeeded',
  'failed',
  'rejected',
  'expired',
  'plan-failed',
  'halted',
  'superseded',
  'cancelled',
] as const;
export type RunState = (typeof runStates)[number];
export const finalStates: readonly RunState[] = ['succeeded', 'failed', 'rejected', 'expired', 'plan-failed', 'superseded', 'cancelled'];

export const personSchema = z.object({ aadObjectId: z.string().max(64), name: z.string().max(200) }).strict();
export type Person = z.infer<typeof personSchema>;

/** The part of a Bot Framework ConversationReference the bot needs to post proactively. */
export const conversationRefSchema = z
  .object({
    activityId: z.string().max(512).optional(),
    bot: z.object({ id: z.string().max(512), name: z.string().max(200).optional() }).passthrough(),
    channelId: z.string().max(64),
    conversation: z
      .object({ id: z.string().max(1024), conversationType: z.string().max(64).optional(), tenantId: z.string().max(128).optional(), isGroup: z.boolean().optional() })
      .passthrough(),
    serviceUrl: z.string().url().max(1024),
    locale: z.string().max(32).optional(),
  })
  .passthrough();
export type ConversationRef = z.infer<typeof conversationRefSchema>;

export const decisionSchema = z
  .object({ decision: z.enum(['approved', 'rejected', 'expired']), decidedBy: personSchema.optional(), decidedAt: z.string() })
  .strict();
export type Decision = z.infer<typeof decisionSchema>;

export const runErrorSchema = z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }).strict();
export type RunError = z.infer<typeof runErrorSchema>;

/** A run's plan: the mailbox plan (approve, test) or the rotation plan (cert-rotate; a rollback keeps its rotation's). */
export const runPlanSchema = z.union([planResultSchema, certPlanResultSchema, setupPlanResultSchema]);
export type RunPlan = PlanResult | CertPlanResult | SetupPlanResult;

/** The requester's confirmation of the checklist items no machine can check (`run setup` plan card). */
export const checklistConfirmationSchema = z.object({ confirmedBy: personSchema, confirmedAt: z.string() }).strict();
export type ChecklistConfirmation = z.infer<typeof checklistConfirmationSchema>;

/** A rollback run: which certificate becomes the issuer again, and which one the rotation had registered. */
export const rollbackTargetSchema = z.object({ restoreThumbprint: thumbprintSchema, failedThumbprint: thumbprintSchema }).strict();
export type RollbackTarget = z.infer<typeof rollbackTargetSchema>;

export const stepsSchema = z.array(stepStateSchema).max(MAX_STEPS);

export interface Run {
  runId: string;
  deployment: string;
  kind: RunKind;
  state: RunState;
  filter?: MailboxFilter;
  requester: Person;
  conversation: ConversationRef;
  cardActivityId?: string;
  createdAt: string;
  updatedAt: string;
  plan?: RunPlan;
  /** 1, raised by every resume of a halted rotation (the job id and timers of each attempt include it). */
  attempt: number;
  /** A rollback: the rotation run it rolls back. */
  parentRunId?: string;
  /** `cert rotate <file>`: the PFX file name the person typed (absent: the agent's default). */
  certFile?: string;
  /** A rollback: the certificates. */
  rollback?: RollbackTarget;
  /** The last step states seen (progress, failed report or result) of a certificate run. */
  steps?: StepState[];
  /**
   * Sticky: some report of some attempt showed register-crm running, done or failed, so CRM's
   * registration may have changed (Roll back, not Abandon). Never cleared.
   */
  registrationTouched?: boolean;
  /** A rotation halted again because its rollback failed before changing CRM's registration: that rollback. */
  failedRollbackRunId?: string;
  /** Who resumed a halted rotation last. */
  resumedBy?: Person;
  /** Who asked for the rollback that superseded this halted rotation. */
  supersededBy?: Person;
  /** A rotation: the rollback run asked for (pending while the rotation is halted; the one that superseded it after). */
  rollbackRunId?: string;
  /** A rotation: who asked for that rollback. */
  rollbackRequestedBy?: Person;
  /** When the approval stops being valid (ISO); set when the plan arrives. */
  expiresAt?: string;
  /** Runbook kinds: a dry run (`run setup --dry-run`, `profile show`, `tenant show`): the plan is shown, nothing is approved. */
  dryRun?: boolean;
  /** `run setup`: the requester confirmed the checklist on the plan card (the approval needs it). */
  checklist?: ChecklistConfirmation;
  /** `cancel <run>` of a running runbook run: who asked (the agent stops before the next step). */
  cancelRequestedBy?: Person;
  approval?: Decision;
  progress?: Progress;
  progressSeq: number;
  result?: JobResult;
  error?: RunError;
  lastPostedSeq: number;
  lastPostedAt: number;
  /** Seq of the final report whose run card was posted (so a redelivered final report posts once). */
  finalPostedSeq: number;
  /** Seq of the final report whose results card was sent into the thread (sent once, even if the report is redelivered). */
  resultsSentSeq: number;
  /** Last permanent failure posting to Teams (403/404/413), for the logs and `status`. */
  postFailure?: string;
}

/** How long a run is kept (the agent's step journal lives as long: jobs/runbook-types.ts). */
export { RUN_TTL_SECONDS };
/** Runs kept in a deployment's index (`jobs`); older ones are still readable by id until their TTL. */
export const RUN_INDEX_MAX = 500;
/** How long a cancel key lives (the agent reads it between steps; a run's job lives a day). */
export const CANCEL_KEY_TTL_SECONDS = 24 * 3600;

export type TransitionOutcome =
  | { ok: true; from: RunState }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'conflict'; current: RunState }
  | { ok: false; reason: 'expired'; current: RunState };

export type RelayDecision =
  | { action: 'post'; seq: number; progress: Progress | undefined }
  | { action: 'stale' }
  | { action: 'wait'; waitMs: number }
  | { action: 'missing' };

export interface NewRun {
  runId: string;
  deployment: string;
  kind: RunKind;
  /** awaiting-approval: a rollback run, created with its plan card already decided on (no plan job). */
  state: 'planning' | 'running' | 'awaiting-approval';
  filter?: MailboxFilter;
  requester: Person;
  conversation: ConversationRef;
  plan?: RunPlan;
  certFile?: string;
  parentRunId?: string;
  rollback?: RollbackTarget;
  steps?: StepState[];
  /** Runbook kinds: a dry run (shown, never approved). */
  dryRun?: boolean;
  /** When the approval stops being valid (epoch ms). */
  expiresAtMs?: number;
}

export type ResumeOutcome =
  | { ok: true; attempt: number }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'conflict'; current: RunState }
  | { ok: false; reason: 'attempt-changed'; attempt: number }
  | { ok: false; reason: 'rollback-pending'; rollbackRunId: string };

export type CertApproveOutcome =
  | { ok: true; from: RunState }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'conflict'; current: RunState }
  | { ok: false; reason: 'expired'; current: RunState }
  /** Another certificate run of the deployment is approved, running or halted. */
  | { ok: false; reason: 'busy'; holder: string; holderState: RunState }
  /** A rollback whose rotation is no longer halted with this rollback pending. */
  | { ok: false; reason: 'parent'; parentState: string };

export type RollbackFailedOutcome =
  | { ok: true; from: RunState; rotationHalted: boolean }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'conflict'; current: RunState };

export type AbandonOutcome =
  | { ok: true; from: RunState }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'conflict'; current: RunState }
  | { ok: false; reason: 'rollback-pending'; rollbackRunId: string }
  /** Some report showed register-crm running, done or failed: CRM may sign with the new certificate. */
  | { ok: false; reason: 'registration-touched' };

export type RollbackRequestOutcome =
  | { ok: true }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'conflict'; current: RunState }
  | { ok: false; reason: 'pending'; rollbackRunId: string };

export type RunPatch = Partial<{
  cardActivityId: string;
  plan: RunPlan;
  steps: StepState[];
  resumedBy: Person;
  supersededBy: Person;
  expiresAt: number;
  approval: Decision;
  result: JobResult;
  error: RunError;
  lastPostedSeq: number;
  lastPostedAt: number;
  postFailure: string;
  checklist: ChecklistConfirmation;
  cancelRequestedBy: Person;
}>;
