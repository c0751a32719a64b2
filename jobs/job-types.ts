import { z } from 'zod';
import { deploymentSchema } from './deployment.ts';
import { ewsAccessReportSchema } from './ews-access.ts';
import { failureGroupSchema, type FailureGroup } from './failure-group.ts';
import { mailboxFilterSchema } from './mailbox-filter.ts';
import {
  certPlanInputSchema,
  certPlanResultSchema,
  certRollbackInputSchema,
  certRollbackResultSchema,
  certRotateInputSchema,
  certRotateResultSchema,
  certStatusResultSchema,
  MAX_STEPS,
  stepStateSchema,
} from './cert-types.ts';
import {
  preflightInputSchema,
  preflightResultSchema,
  setupPlanInputSchema,
  setupPlanResultSchema,
  setupRunInputSchema,
  setupRunResultSchema,
} from './runbook-types.ts';

/**
 * The contract between the bot and the agent: what a job asks for, how it reports progress, and
 * what it returns. Both sides parse with these schemas (on enqueue and on dequeue).
 */
export const runIdSchema = z.string().regex(/^[a-z0-9]{8,32}$/, 'is not a run id');
/** An Entra object id (activity.from.aadObjectId). */
export const aadObjectIdSchema = z.string().regex(/^[0-9a-fA-F-]{8,64}$/, 'is not an Entra object id');

export const jobTypeSchema = z.enum(['plan', 'status', 'approve', 'test', 'cert-status', 'cert-plan', 'cert-rotate', 'cert-rollback', 'preflight', 'setup-plan', 'setup-run']);
export type JobType = z.infer<typeof jobTypeSchema>;

export const mailboxActionSchema = z.enum(['approve', 'test']);
export type MailboxAction = z.infer<typeof mailboxActionSchema>;

const common = {
  runId: runIdSchema,
  deployment: deploymentSchema,
  requestedBy: aadObjectIdSchema,
};

export const planPayloadSchema = z.object({
  type: z.literal('plan'),
  ...common,
  action: mailboxActionSchema,
  filter: mailboxFilterSchema,
}).strict();

export const statusPayloadSchema = z.object({ type: z.literal('status'), ...common }).strict();

/**
 * What the approver saw: the plan's number of mailboxes that would change. The agent refuses to
 * go on when the selection has since grown well beyond it (see `exceedsPlan`), so an approval of
 * "12 mailboxes" can never turn into 5,000.
 */
const plannedCount = z.number().int().nonnegative();

export const approvePayloadSchema = z.object({
  type: z.literal('approve'),
  ...common,
  filter: mailboxFilterSchema,
  approvedBy: aadObjectIdSchema,
  plannedCount,
}).strict();

export const testPayloadSchema = z.object({
  type: z.literal('test'),
  ...common,
  filter: mailboxFilterSchema,
  approvedBy: aadObjectIdSchema,
  plannedCount,
}).strict();

/**
 * True when the selection at run time is larger than the approved plan by more than a small
 * margin (mailboxes created meanwhile): max(5, 10% of the plan).
 */
export function exceedsPlan(plannedCount: number, actual: number): boolean {
  return actual > plannedCount + Math.max(5, Math.ceil(plannedCount * 0.1));
}

/** `cert status` and the expiry watch: read-only. */
export const certStatusPayloadSchema = z.object({ type: z.literal('cert-status'), ...common }).strict();
/** `cert rotate`: read-only; reads the new PFX on the agent host and plans the rotation. */
export const certPlanPayloadSchema = z.object({ type: z.literal('cert-plan'), ...common, ...certPlanInputSchema.shape }).strict();
/** The approved rotation (approver ≠ requester), or its resume (attempt > 1). */
export const certRotatePayloadSchema = z.object({ type: z.literal('cert-rotate'), ...common, ...certRotateInputSchema.shape }).strict();
/** The approved rollback of a rotation whose verification failed. */
export const certRollbackPayloadSchema = z.object({ type: z.literal('cert-rollback'), ...common, ...certRollbackInputSchema.shape }).strict();

/** `preflight`: read-only checks (runbook-types.ts). */
export const preflightPayloadSchema = z.object({ type: z.literal('preflight'), ...common, ...preflightInputSchema.shape }).strict();
/** The runbook's plan (`run setup`, `profile show|create`, `tenant show|set`, `configure mailboxes`): read-only. */
export const setupPlanPayloadSchema = z.object({ type: z.literal('setup-plan'), ...common, ...setupPlanInputSchema.shape }).strict();
/** The approved runbook run, or its resume (attempt > 1). */
export const setupRunPayloadSchema = z.object({ type: z.literal('setup-run'), ...common, ...setupRunInputSchema.shape }).strict();

export const jobPayloadSchema = z.discriminatedUnion('type', [
  planPayloadSchema,
  statusPayloadSchema,
  approvePayloadSchema,
  testPayloadSchema,
  certStatusPayloadSchema,
  certPlanPayloadSchema,
  certRotatePayloadSchema,
  certRollbackPayloadSchema,
  preflightPayloadSchema,
  setupPlanPayloadSchema,
  setupRunPayloadSchema,
]);
export type JobPayload = z.infer<typeof jobPayloadSchema>;
export type PayloadOf<T extends JobType> = Extract<JobPayload, { type: T }>;

// ---- progress -------------------------------------------------------------------------------

export const progressSchema = z.object({
  phase: z.enum(['reading', 'approving', 'scheduling', 'waiting', 'collecting', 'step']),
  done: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  /** Outcome counts so far (for example succeeded / failed while Test & Enable results arrive). */
  counts: z.record(z.string(), z.number().int().nonnegative()).optional(),
  /** Multi-step runs (certificate rotation, runbook): the state of every step. */
  steps: z.array(stepStateSchema).max(MAX_STEPS).optional(),
}).strict();
export type Progress = z.infer<typeof progressSchema>;

// ---- results --------------------------------------------------------------------------------

const count = z.number().int().nonnegative();
const addressSample = z.array(z.string().max(320)).max(10);

export { failureGroupSchema, type FailureGroup };

export const planResultSchema = z.object({
  type: z.literal('plan'),
  action: mailboxActionSchema,
  matched: count,
  /** How many of the matched would actually change (approve skips the already approved). */
  toChange: count,
  sample: addressSample,
}).strict();

export const statusResultSchema = z.object({
  type: z.literal('status'),
  total: count,
  approval: z.object({ empty: count, approved: count, pending: count, rejected: count }).strict(),
  test: z.object({ success: count, failure: count, notRun: count }).strict(),
  crmUser: z.string().max(64),
  /** EWS access in Exchange Online for the active mailboxes (absent from agents older than the EWS checks). */
  ews: ewsAccessReportSchema.optional(),
}).strict();

export const approveResultSchema = z.object({
  type: z.literal('approve'),
  matched: count,
  approved: count,
  alreadyApproved: count,
  failed: count,
  failures: z.array(failureGroupSchema).max(20),
  crmRequests: count,
  durationMs: count,
}).strict();

export const testResultSchema = z.object({
  type: z.literal('test'),
  selected: count,
  succeeded: count,
  failed: count,
  /** Scheduled but no result before the time-out. */
  noResult: count,
  failures: z.array(failureGroupSchema).max(20),
  crmRequests: count,
  durationMs: count,
}).strict();

export const jobResultSchema = z.discriminatedUnion('type', [
  planResultSchema,
  statusResultSchema,
  approveResultSchema,
  testResultSchema,
  certStatusResultSchema,
  certPlanResultSchema,
  certRotateResultSchema,
  certRollbackResultSchema,
  preflightResultSchema,
  setupPlanResultSchema,
  setupRunResultSchema,
]);
export type JobResult = z.infer<typeof jobResultSchema>;
export type ResultOf<T extends JobType> = Extract<JobResult, { type: T }>;
export type PlanResult = ResultOf<'plan'>;
export type StatusResult = ResultOf<'status'>;
export type ApproveResult = ResultOf<'approve'>;
export type TestResult = ResultOf<'test'>;
export type { CertPlanResult, CertRollbackResult, CertRotateResult, CertStatusResult } from './cert-types.ts';
export type { PreflightResult, SetupPlanResult, SetupRunResult } from './runbook-types.ts';

// ---- reports (agent → bot) -------------------------------------------------------------------

export const reportEventSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('started') }).strict(),
  z.object({ kind: z.literal('progress'), progress: progressSchema }).strict(),
  z.object({ kind: z.literal('result'), result: jobResultSchema }).strict(),
  z.object({
    kind: z.literal('failed'),
    error: z.object({ code: z.string().max(64), message: z.string().max(1000), hint: z.string().max(1000).optional() }).strict(),
    /** Multi-step runs: the step states when it stopped (the failed step is 'failed'). */
    steps: z.array(stepStateSchema).max(MAX_STEPS).optional(),
  }).strict(),
]);
export type ReportEvent = z.infer<typeof reportEventSchema>;

export const reportSchema = z.object({
  runId: runIdSchema,
  deployment: deploymentSchema,
  jobType: jobTypeSchema,
  /** Increases with every report of a run; the relay drops anything older than what it posted. */
  seq: z.number().int().nonnegative(),
  at: z.string().datetime(),
  event: reportEventSchema,
}).strict();
export type Report = z.infer<typeof reportSchema>;
