import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { mailboxFilterSchema, type MailboxFilter } from '../../jobs/mailbox-filter.ts';
import { MAX_STEPS, certFileNameSchema, certPlanResultSchema, stepStateSchema, thumbprintSchema, type CertPlanResult, type StepState } from '../../jobs/cert-types.ts';
import { RUN_TTL_SECONDS, setupPlanResultSchema, type RunbookScope, type SetupPlanResult } from '../../jobs/runbook-types.ts';
import { jobResultSchema, planResultSchema, progressSchema, runIdSchema, type JobResult, type PlanResult, type Progress } from '../../jobs/job-types.ts';

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

export const runKindSchema = z.enum(['approve', 'test', 'status', 'cert-status', 'cert-watch', 'cert-rotate', 'cert-rollback', 'preflight', 'setup', 'profile', 'tenant', 'configure', 'ews', 'primary-org']);
export type RunKind = z.infer<typeof runKindSchema>;

/** The run kinds of the runbook (issue 4): `run setup` and the smaller commands on its steps; the kind is the job's scope. */
export const runbookKinds = ['setup', 'profile', 'tenant', 'configure', 'ews', 'primary-org'] as const satisfies readonly RunbookScope[];
export type RunbookKind = (typeof runbookKinds)[number];
export function isRunbookKind(kind: RunKind): kind is RunbookKind {
  return (runbookKinds as readonly string[]).includes(kind);
}

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

const stepsSchema = z.array(stepStateSchema).max(MAX_STEPS);

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

/**
 * KEYS[1] run key. ARGV[1] allowed current states (comma-separated), ARGV[2] new state, ARGV[3]
 * now (ms), ARGV[4] expiry check ('1': refuse when now > expiresAtMs), ARGV[5] now (ISO), ARGV[6..]
 * field/value pairs. KEYS[2] (optional) the deployment's cert-active key: released in the same step
 * when it holds this run (a certificate run reaching a final state).
 */
const transitionScript = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return {'conflict', state} end
if ARGV[4] == '1' then
  local exp = tonumber(redis.call('HGET', KEYS[1], 'expiresAtMs') or '0')
  if exp > 0 and tonumber(ARGV[3]) > exp then return {'expired', state} end
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updatedAt', ARGV[5])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if #KEYS > 1 and redis.call('GET', KEYS[2]) == redis.call('HGET', KEYS[1], 'runId') then
  redis.call('DEL', KEYS[2])
end
return {'ok', state}
`;

/**
 * Resume of a halted run. KEYS[1] run key. ARGV[1] expected attempt, ARGV[2] now (ISO), ARGV[3..]
 * field/value pairs. halted → approved and attempt + 1 in one step, refused when the run is not
 * halted, its attempt is not the one the clicker saw (another resume got there first), or a rollback
 * of it is waiting for approval. The previous attempt's result and error are cleared (and the note of
 * a rollback that failed before changing anything); registrationTouched stays. KEYS[2] (optional) the
 * run's cancel key: deleted in the same step, with cancelRequestedBy (a cancel asked while the failed
 * attempt ran must not stop the resumed one).
 */
const resumeScript = `
local h = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'rollbackRunId')
if not h[1] then return {'missing', '', ''} end
local attempt = tonumber(h[2] or '1')
if h[1] ~= 'halted' then return {'conflict', h[1], tostring(attempt)} end
if h[3] and h[3] ~= '' then return {'rollback-pending', h[3], tostring(attempt)} end
if attempt ~= tonumber(ARGV[1]) then return {'attempt-changed', h[1], tostring(attempt)} end
redis.call('HDEL', KEYS[1], 'result', 'error', 'failedRollbackRunId', 'cancelRequestedBy')
if #KEYS > 1 then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'state', 'approved', 'attempt', tostring(attempt + 1), 'updatedAt', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {'ok', 'halted', tostring(attempt + 1)}
`;

/**
 * `cancel <run>` of an approved or running runbook run. KEYS[1] run key, KEYS[2] the run's cancel key.
 * ARGV[1] who asked (JSON), ARGV[2] TTL of the key (s), ARGV[3] now (ISO). Sets the cancel key (the
 * agent stops before its next step) and records who asked, only while the run is approved or running.
 */
const requestCancelScript = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if state ~= 'approved' and state ~= 'running' then return {'conflict', state} end
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'cancelRequestedBy', ARGV[1], 'updatedAt', ARGV[3])
return {'ok', state}
`;

const finalStatesLua = `{ succeeded = true, failed = true, rejected = true, expired = true, ['plan-failed'] = true, superseded = true, cancelled = true }`;

/**
 * Approval of a rotation or a rollback, with the one-change-at-a-time rule. KEYS[1] run key, KEYS[2]
 * the deployment's cert-active key, KEYS[3] the rotation a rollback rolls back (else KEYS[1]), KEYS[4]
 * the run of the holder the caller read (else KEYS[1]). ARGV[1] now (ms), ARGV[2] now (ISO), ARGV[3]
 * run id, ARGV[4] the rotation's run id ('' for a rotation), ARGV[5] the holder the caller read ('' none),
 * ARGV[6] TTL of the key (s), ARGV[7..] field/value pairs.
 * awaiting-approval → approved; refused ('busy') while another run holds the key and is not final
 * (a holder whose run is gone or final is stale and replaced); a rollback needs its rotation halted
 * with this rollback pending, and moves it to superseded in the same step (the key passes to the rollback).
 */
const approveCertScript = `
local final = ${finalStatesLua}
local h = redis.call('HMGET', KEYS[1], 'state', 'expiresAtMs')
if not h[1] then return {'missing', '', ''} end
if h[1] ~= 'awaiting-approval' then return {'conflict', h[1], ''} end
local exp = tonumber(h[2] or '0')
if exp > 0 and tonumber(ARGV[1]) > exp then return {'expired', h[1], ''} end
local holder = redis.call('GET', KEYS[2]) or ''
if holder ~= ARGV[5] then return {'retry', '', ''} end
if holder ~= '' and holder ~= ARGV[3] and holder ~= ARGV[4] then
  local hs = redis.call('HGET', KEYS[4], 'state')
  if hs and not final[hs] then return {'busy', holder, hs} end
end
if ARGV[4] ~= '' then
  local p = redis.call('HMGET', KEYS[3], 'state', 'rollbackRunId', 'rollbackRequestedBy')
  if p[1] ~= 'halted' or p[2] ~= ARGV[3] then return {'parent', p[1] or '', ''} end
  redis.call('HSET', KEYS[3], 'state', 'superseded', 'updatedAt', ARGV[2])
  if p[3] then redis.call('HSET', KEYS[3], 'supersededBy', p[3]) end
end
redis.call('HSET', KEYS[1], 'state', 'approved', 'updatedAt', ARGV[2])
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[6]))
return {'ok', h[1], ''}
`;

/**
 * Roll back asked on a halted rotation. KEYS[1] rotation run key. ARGV[1] rollback run id, ARGV[2]
 * who asked (JSON), ARGV[3] now (ISO). Records the pending rollback only if the rotation is halted
 * and none is pending.
 */
const requestRollbackScript = `
local h = redis.call('HMGET', KEYS[1], 'state', 'rollbackRunId')
if not h[1] then return {'missing', ''} end
if h[1] ~= 'halted' then return {'conflict', h[1]} end
if h[2] and h[2] ~= '' then return {'pending', h[2]} end
redis.call('HSET', KEYS[1], 'rollbackRunId', ARGV[1], 'rollbackRequestedBy', ARGV[2], 'updatedAt', ARGV[3])
redis.call('HDEL', KEYS[1], 'failedRollbackRunId')
return {'ok', ''}
`;

/** KEYS[1] rotation run key; ARGV[1] rollback run id. Clears the pending rollback of a halted rotation if it is this one. */
const clearPendingRollbackScript = `
local h = redis.call('HMGET', KEYS[1], 'state', 'rollbackRunId')
if h[1] ~= 'halted' or h[2] ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'rollbackRunId', 'rollbackRequestedBy')
return 1
`;

/**
 * A rollback that failed: it never started (its job could not be enqueued, or no agent took it in
 * time), the agent reported it failed, or its result says the verification failed. KEYS[1] rollback
 * run key, KEYS[2] cert-active key, KEYS[3] the rotation's run key. ARGV[1] now (ISO), ARGV[2] TTL of
 * the key (s), ARGV[3] allowed current states of the rollback (comma-separated), ARGV[4..]
 * field/value pairs for the rollback (its steps set registrationTouched in the same HSETs).
 * The rollback: → failed. When it never touched CRM's registration (its register-crm never ran: it
 * changed nothing), the rotation it superseded is halted again (no pending rollback, a note of the
 * failed one) and the cert-active key goes back to it: Resume, Roll back (and Abandon as the rules
 * say) are offered again. Otherwise the key is released as for any final certificate run.
 * Returns {'ok', previous state, '1' when the rotation was halted again}.
 */
const rollbackFailedScript = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '', ''} end
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return {'conflict', state, ''} end
redis.call('HSET', KEYS[1], 'state', 'failed', 'updatedAt', ARGV[1])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local id = redis.call('HGET', KEYS[1], 'runId')
local touched = redis.call('HGET', KEYS[1], 'registrationTouched') == '1'
local p = redis.call('HMGET', KEYS[3], 'state', 'rollbackRunId', 'runId')
if not touched and p[1] == 'superseded' and p[2] == id then
  redis.call('HSET', KEYS[3], 'state', 'halted', 'updatedAt', ARGV[1], 'failedRollbackRunId', id)
  redis.call('HDEL', KEYS[3], 'rollbackRunId', 'rollbackRequestedBy', 'supersededBy')
  if redis.call('GET', KEYS[2]) == id then redis.call('SET', KEYS[2], p[3], 'EX', tonumber(ARGV[2])) end
  return {'ok', state, '1'}
end
if redis.call('GET', KEYS[2]) == id then
  redis.call('DEL', KEYS[2])
end
return {'ok', state, '0'}
`;

/**
 * Abandon of a halted rotation. KEYS[1] run key, KEYS[2] cert-active key. ARGV[1] now (ISO), ARGV[2..]
 * field/value pairs. halted → failed, releasing the key if it holds this run, in one step; refused
 * when a rollback is pending or the rotation ever touched CRM's registration (registrationTouched).
 */
const abandonScript = `
local h = redis.call('HMGET', KEYS[1], 'state', 'rollbackRunId', 'registrationTouched', 'runId')
if not h[1] then return {'missing', ''} end
if h[1] ~= 'halted' then return {'conflict', h[1]} end
if h[2] and h[2] ~= '' then return {'rollback-pending', h[2]} end
if h[3] == '1' then return {'registration-touched', ''} end
redis.call('HSET', KEYS[1], 'state', 'failed', 'updatedAt', ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if redis.call('GET', KEYS[2]) == h[4] then redis.call('DEL', KEYS[2]) end
return {'ok', h[1]}
`;

/**
 * Progress coalescing. KEYS[1] run key. ARGV[1] seq, ARGV[2] progress JSON ('' for none), ARGV[3]
 * now (ms), ARGV[4] minimum interval (ms), ARGV[5] the progress's step states JSON ('' for none),
 * ARGV[6] '1' when those steps show register-crm running, done or failed (the sticky
 * registrationTouched flag is set, whatever the seq or state: it only ever records what happened).
 * Keeps the newest progress; posts it when nothing newer was posted and the interval since the last
 * post has passed, and claims the post atomically.
 */
const relayProgressScript = `
local h = redis.call('HMGET', KEYS[1], 'state', 'progressSeq', 'lastPostedSeq', 'lastPostedAt')
if not h[1] then return {'missing', ''} end
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'registrationTouched', '1') end
if h[1] ~= 'approved' and h[1] ~= 'running' then return {'stale', ''} end
local seq = tonumber(ARGV[1])
local progressSeq = tonumber(h[2] or '-1')
if seq > progressSeq then
  if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'progressSeq', ARGV[1], 'progress', ARGV[2])
  else
    redis.call('HSET', KEYS[1], 'progressSeq', ARGV[1])
  end
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'steps', ARGV[5]) end
  progressSeq = seq
end
local lastSeq = tonumber(h[3] or '-1')
if progressSeq <= lastSeq then return {'stale', ''} end
local lastAt = tonumber(h[4] or '0')
local now = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
if lastAt > 0 and now - lastAt < interval then return {'wait', tostring(lastAt + interval - now)} end
redis.call('HSET', KEYS[1], 'lastPostedSeq', tostring(progressSeq), 'lastPostedAt', ARGV[3])
return {'post', tostring(progressSeq)}
`;

/**
 * KEYS[1] run key; ARGV[1] field; ARGV[2] seq. Raises a seq field (finalPostedSeq, resultsSentSeq)
 * to seq unless it is already there. A run that no longer exists (expired) is not recreated.
 */
const markSeqScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if cur >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/** KEYS[1] lock key; ARGV[1] token. Deletes the lock only if it is still this holder's. */
const releaseLockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * KEYS[1] run key, KEYS[2] the deployment's run index; ARGV[1] TTL (s), ARGV[2] now (ms), ARGV[3]
 * index size, ARGV[4..] field/value pairs. Creates the run unless the key exists, with its TTL, and
 * adds it to the index (newest kept, oldest trimmed), in one step.
 */
const createScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
local runId = redis.call('HGET', KEYS[1], 'runId')
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), runId)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
`;

/** KEYS[1] run key; ARGV field/value pairs. Sets fields of an existing run (its TTL stays); a missing run stays missing. */
const patchScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
`;

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

export interface RunStoreOptions {
  redis: Redis;
  prefix: string;
  now?: () => number;
}

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

export class RunStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #now: () => number;

  constructor(options: RunStoreOptions) {
    this.#redis = options.redis;
    this.#prefix = options.prefix;
    this.#now = options.now ?? Date.now;
  }

  key(runId: string): string {
    return `${this.#prefix}:run:${runId}`;
  }

  async create(run: NewRun): Promise<Run> {
    const at = new Date(this.#now()).toISOString();
    const fields: Record<string, string> = {
      runId: run.runId,
      deployment: run.deployment,
      kind: run.kind,
      state: run.state,
      requester: JSON.stringify(personSchema.parse(run.requester)),
      conversation: JSON.stringify(conversationRefSchema.parse(run.conversation)),
      createdAt: at,
      updatedAt: at,
      progressSeq: '-1',
      lastPostedSeq: '-1',
      lastPostedAt: '0',
      finalPostedSeq: '-1',
      resultsSentSeq: '-1',
    };
    if (run.filter) fields['filter'] = JSON.stringify(mailboxFilterSchema.parse(run.filter));
    fields['attempt'] = '1';
    if (run.certFile !== undefined) fields['certFile'] = certFileNameSchema.parse(run.certFile);
    if (run.parentRunId !== undefined) fields['parentRunId'] = runIdSchema.parse(run.parentRunId);
    if (run.rollback !== undefined) fields['rollback'] = JSON.stringify(rollbackTargetSchema.parse(run.rollback));
    if (run.dryRun === true) fields['dryRun'] = '1';
    Object.assign(fields, Object.fromEntries(pairsOf(encodePatch({
      ...(run.plan ? { plan: run.plan } : {}),
      ...(run.steps ? { steps: run.steps } : {}),
      ...(run.expiresAtMs !== undefined ? { expiresAt: run.expiresAtMs } : {}),
    }))));
    const key = this.key(run.runId);
    // One script: a run id is never reused, and the run never exists without its TTL.
    const created = (await this.#redis.eval(
      createScript,
      2,
      key,
      this.indexKey(run.deployment),
      String(RUN_TTL_SECONDS),
      String(this.#now()),
      String(RUN_INDEX_MAX),
      ...Object.entries(fields).flat(),
    )) as number;
    if (created !== 1) throw new Error(`run ${run.runId} already exists`);
    const stored = await this.get(run.runId);
    if (!stored) throw new Error(`run ${run.runId} vanished after creation`);
    return stored;
  }

  /** Sorted set of a deployment's run ids by creation time (`@setup jobs`). */
  indexKey(deployment: string): string {
    return `${this.#prefix}:runs:${deployment}`;
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
    return `${this.#prefix}:cancel:${runId}`;
  }

  /**
   * `cancel <run>` of an approved or running runbook run: sets its cancel key (TTL a day) and records
   * who asked, in one step; refused when the run is in another state.
   */
  async requestCancel(runId: string, by: Person): Promise<TransitionOutcome> {
    const raw = (await this.#redis.eval(
      requestCancelScript,
      2,
      this.key(runId),
      this.cancelKey(runId),
      JSON.stringify(personSchema.parse(by)),
      String(CANCEL_KEY_TTL_SECONDS),
      new Date(this.#now()).toISOString(),
    )) as [string, string];
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
    const n = (await this.#redis.eval(patchScript, 1, this.key(runId), ...pairs)) as number;
    return n === 1;
  }

  /**
   * Sets the sticky registrationTouched flag (a report showed register-crm running, done or failed),
   * for a report that may not store its steps (an earlier attempt's, one that no longer fits the
   * state). Monotonic: never cleared. False when the run no longer exists.
   */
  async markRegistrationTouched(runId: string): Promise<boolean> {
    const n = (await this.#redis.eval(patchScript, 1, this.key(runId), 'registrationTouched', '1')) as number;
    return n === 1;
  }

  /** The deployment's "active certificate change" key: the run id of the rotation or rollback approved, running or halted. */
  certActiveKey(deployment: string): string {
    return `${this.#prefix}:cert-active:${deployment}`;
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
    const raw = (await this.#redis.eval(
      transitionScript,
      keys.length,
      ...keys,
      from.join(','),
      to,
      String(now),
      options.refuseIfExpired ? '1' : '0',
      new Date(now).toISOString(),
      ...encodePatch(patch),
    )) as [string, string];
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
    const raw = (await this.#redis.eval(
      resumeScript,
      2,
      this.key(runId),
      this.cancelKey(runId),
      String(expectedAttempt),
      new Date(this.#now()).toISOString(),
      ...encodePatch(patch),
    )) as [string, string, string];
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
      const raw = (await this.#redis.eval(
        approveCertScript,
        4,
        this.key(runId),
        activeKey,
        parentRunId !== undefined ? this.key(parentRunId) : this.key(runId),
        holderKey,
        String(now),
        new Date(now).toISOString(),
        runId,
        parentRunId ?? '',
        holder,
        String(RUN_TTL_SECONDS),
        ...encodePatch(patch),
      )) as [string, string, string];
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
    const raw = (await this.#redis.eval(
      requestRollbackScript,
      1,
      this.key(rotationRunId),
      runIdSchema.parse(rollbackRunId),
      JSON.stringify(personSchema.parse(by)),
      new Date(this.#now()).toISOString(),
    )) as [string, string];
    const [status, value] = raw;
    if (status === 'ok') return { ok: true };
    if (status === 'missing') return { ok: false, reason: 'missing' };
    if (status === 'pending') return { ok: false, reason: 'pending', rollbackRunId: value };
    return { ok: false, reason: 'conflict', current: value as RunState };
  }

  /** Clears the rotation's pending rollback if it is `rollbackRunId` (rejected, withdrawn, expired, not posted); true when cleared. */
  async clearPendingRollback(rotationRunId: string, rollbackRunId: string): Promise<boolean> {
    const n = (await this.#redis.eval(clearPendingRollbackScript, 1, this.key(rotationRunId), rollbackRunId)) as number;
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
    const raw = (await this.#redis.eval(
      rollbackFailedScript,
      3,
      this.key(rollbackRunId),
      this.certActiveKey(deployment),
      this.key(rotationRunId),
      new Date(this.#now()).toISOString(),
      String(RUN_TTL_SECONDS),
      from.join(','),
      ...encodePatch(patch),
    )) as [string, string, string];
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
    const raw = (await this.#redis.eval(
      abandonScript,
      2,
      this.key(runId),
      this.certActiveKey(deployment),
      new Date(this.#now()).toISOString(),
      ...encodePatch(patch),
    )) as [string, string];
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
    const raw = (await this.#redis.eval(
      relayProgressScript,
      1,
      this.key(runId),
      String(seq),
      parsed ? JSON.stringify(parsed) : '',
      String(this.#now()),
      String(intervalMs),
      parsed?.steps ? JSON.stringify(parsed.steps) : '',
      touchesRegistration(parsed?.steps) ? '1' : '',
    )) as [string, string];
    const [status, value] = raw;
    if (status === 'missing') return { action: 'missing' };
    if (status === 'stale') return { action: 'stale' };
    if (status === 'wait') return { action: 'wait', waitMs: Math.max(1, Number(value)) };
    const run = await this.get(runId);
    return { action: 'post', seq: Number(value), progress: run?.progress };
  }

  lockKey(runId: string): string {
    return `${this.#prefix}:run-lock:${runId}`;
  }

  /**
   * Takes the run's card lock: every write of the run card (progress, final, timer, click) holds it,
   * so a slow write (429 retries) cannot land after a newer one. Returns the holder's token, or
   * undefined when another writer holds it. The lock expires after `ttlMs` if its holder dies.
   */
  async acquireCardLock(runId: string, ttlMs: number): Promise<string | undefined> {
    const token = randomUUID();
    const ok = await this.#redis.set(this.lockKey(runId), token, 'PX', Math.max(1, Math.round(ttlMs)), 'NX');
    return ok === 'OK' ? token : undefined;
  }

  /** Releases the lock if this token still holds it; false when it had expired (another writer may have written meanwhile). */
  async releaseCardLock(runId: string, token: string): Promise<boolean> {
    const n = (await this.#redis.eval(releaseLockScript, 1, this.lockKey(runId), token)) as number;
    return n === 1;
  }

  /** True the first time the final run card of report `seq` is marked posted (false for a run that no longer exists). */
  async markFinalPosted(runId: string, seq: number): Promise<boolean> {
    const n = (await this.#redis.eval(markSeqScript, 1, this.key(runId), 'finalPostedSeq', String(seq))) as number;
    return n === 1;
  }

  /**
   * True the first time the results card of report `seq` is marked sent. Kept apart from the final
   * run card: a report redelivered because the run card could not be updated must not send the
   * results card again.
   */
  async markResultsSent(runId: string, seq: number): Promise<boolean> {
    const n = (await this.#redis.eval(markSeqScript, 1, this.key(runId), 'resultsSentSeq', String(seq))) as number;
    return n === 1;
  }
}

/**
 * Whether these step states show register-crm running, done or failed: the step that changes CRM's
 * registration started (a failed or timed-out Set-CrmCertificate may still have taken effect).
 */
export function touchesRegistration(steps: readonly StepState[] | undefined): boolean {
  return (steps ?? []).some((s) => s.id === 'register-crm' && (s.state === 'running' || s.state === 'done' || s.state === 'failed'));
}

function encodePatch(patch: RunPatch): string[] {
  const pairs: string[] = [];
  if (patch.cardActivityId !== undefined) pairs.push('cardActivityId', patch.cardActivityId);
  if (patch.plan !== undefined) pairs.push('plan', JSON.stringify(runPlanSchema.parse(patch.plan)));
  if (patch.steps !== undefined) {
    pairs.push('steps', JSON.stringify(stepsSchema.parse(patch.steps)));
    // Sticky: written with the steps (same HSETs), never cleared by steps that no longer show it.
    if (touchesRegistration(patch.steps)) pairs.push('registrationTouched', '1');
  }
  if (patch.resumedBy !== undefined) pairs.push('resumedBy', JSON.stringify(personSchema.parse(patch.resumedBy)));
  if (patch.supersededBy !== undefined) pairs.push('supersededBy', JSON.stringify(personSchema.parse(patch.supersededBy)));
  if (patch.expiresAt !== undefined) pairs.push('expiresAtMs', String(patch.expiresAt));
  if (patch.approval !== undefined) pairs.push('approval', JSON.stringify(decisionSchema.parse(patch.approval)));
  if (patch.result !== undefined) pairs.push('result', JSON.stringify(jobResultSchema.parse(patch.result)));
  if (patch.error !== undefined) pairs.push('error', JSON.stringify(runErrorSchema.parse(patch.error)));
  if (patch.lastPostedSeq !== undefined) pairs.push('lastPostedSeq', String(patch.lastPostedSeq));
  if (patch.lastPostedAt !== undefined) pairs.push('lastPostedAt', String(patch.lastPostedAt));
  if (patch.postFailure !== undefined) pairs.push('postFailure', patch.postFailure.slice(0, 500));
  if (patch.checklist !== undefined) pairs.push('checklist', JSON.stringify(checklistConfirmationSchema.parse(patch.checklist)));
  if (patch.cancelRequestedBy !== undefined) pairs.push('cancelRequestedBy', JSON.stringify(personSchema.parse(patch.cancelRequestedBy)));
  return pairs;
}

function pairsOf(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] ?? '', flat[i + 1] ?? '']);
  return out;
}

function json<S extends z.ZodTypeAny>(schema: S, value: string | undefined): z.output<S> | undefined {
  if (value === undefined || value === '') return undefined;
  return schema.parse(JSON.parse(value)) as z.output<S>;
}

function decodeRun(h: Record<string, string>): Run {
  const run: Run = {
    runId: h['runId'] ?? '',
    deployment: h['deployment'] ?? '',
    kind: runKindSchema.parse(h['kind']),
    state: z.enum(runStates).parse(h['state']),
    requester: personSchema.parse(JSON.parse(h['requester'] ?? '{}')),
    conversation: conversationRefSchema.parse(JSON.parse(h['conversation'] ?? '{}')),
    createdAt: h['createdAt'] ?? '',
    updatedAt: h['updatedAt'] ?? '',
    progressSeq: Number(h['progressSeq'] ?? '-1'),
    lastPostedSeq: Number(h['lastPostedSeq'] ?? '-1'),
    lastPostedAt: Number(h['lastPostedAt'] ?? '0'),
    finalPostedSeq: Number(h['finalPostedSeq'] ?? '-1'),
    resultsSentSeq: Number(h['resultsSentSeq'] ?? '-1'),
    attempt: Number(h['attempt'] ?? '1') || 1,
  };
  const filter = json(mailboxFilterSchema, h['filter']);
  if (filter) run.filter = filter;
  if (h['cardActivityId']) run.cardActivityId = h['cardActivityId'];
  const plan = json(runPlanSchema, h['plan']);
  if (plan) run.plan = plan;
  if (h['parentRunId']) run.parentRunId = h['parentRunId'];
  if (h['certFile']) run.certFile = h['certFile'];
  const rollback = json(rollbackTargetSchema, h['rollback']);
  if (rollback) run.rollback = rollback;
  const steps = json(stepsSchema, h['steps']);
  if (steps) run.steps = steps;
  if (h['registrationTouched'] === '1') run.registrationTouched = true;
  if (h['failedRollbackRunId']) run.failedRollbackRunId = h['failedRollbackRunId'];
  const resumedBy = json(personSchema, h['resumedBy']);
  if (resumedBy) run.resumedBy = resumedBy;
  const supersededBy = json(personSchema, h['supersededBy']);
  if (supersededBy) run.supersededBy = supersededBy;
  if (h['rollbackRunId']) run.rollbackRunId = h['rollbackRunId'];
  const rollbackRequestedBy = json(personSchema, h['rollbackRequestedBy']);
  if (rollbackRequestedBy) run.rollbackRequestedBy = rollbackRequestedBy;
  if (h['expiresAtMs']) run.expiresAt = new Date(Number(h['expiresAtMs'])).toISOString();
  const approval = json(decisionSchema, h['approval']);
  if (approval) run.approval = approval;
  const progress = json(progressSchema, h['progress']);
  if (progress) run.progress = progress;
  const result = json(jobResultSchema, h['result']);
  if (result) run.result = result;
  const error = json(runErrorSchema, h['error']);
  if (error) run.error = error;
  if (h['postFailure']) run.postFailure = h['postFailure'];
  if (h['dryRun'] === '1') run.dryRun = true;
  const checklist = json(checklistConfirmationSchema, h['checklist']);
  if (checklist) run.checklist = checklist;
  const cancelRequestedBy = json(personSchema, h['cancelRequestedBy']);
  if (cancelRequestedBy) run.cancelRequestedBy = cancelRequestedBy;
  return run;
}
