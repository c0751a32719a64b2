import { z } from 'zod';
import type { rotationStepIds} from './cert-types.ts';
import { stepStateSchema, thumbprintSchema, verificationSchema } from './cert-types.ts';
import { runbookOnlyStepIds, runbookStepTitles } from './step-ids.ts';
import { ewsAccessReportSchema } from './ews-access.ts';
import { mailboxFilterSchema } from './mailbox-filter.ts';

/**
 * The runbook part of the bot ↔ agent contract (issue 4): the whole server-side sync set-up of
 * procedure.md as one ordered list of steps (`run setup`), and the smaller commands that run one
 * of its steps (`profile create`, `tenant set`, `configure mailboxes`). docs/runbook.md is the design.
 *
 * Every step checks, then changes, then reads back what it changed. A plan (`setup-plan`, read-only)
 * runs every check and says per step what would change ("would …") or that it is already done; the
 * run (`setup-run`) does the same checks and the changes, recorded in the step journal so a resumed
 * or restarted run skips what is done and never does a change twice.
 */

export { runbookOnlyStepIds };

/**
 * How long a run lives (bot/runs/run-store.ts: a halted run can be resumed for 30 days). The agent's step
 * journal lives as long, so a resume finds what the earlier attempts did.
 */
export const RUN_TTL_SECONDS = 30 * 24 * 3600;

/** Every step of the full runbook, in the procedure's order. */
export const setupStepIds = [
  'preflight',
  // §1, §2.2, §2.3, §8: the certificate on every async server, registered in CRM and in Entra, the S2S server settings.
  'import',
  'grant-key-access',
  'register-crm',
  'entra-key-credential',
  's2s-settings',
  // §2.4
  'tenant-id',
  // §1 (since 1 October 2026): Exchange Online accepts EWS from CRM (server-side sync is EWS).
  'ews-access',
  // §8: the async services pick up the certificate and the settings only after a restart.
  'restart-services',
  // §3, §4, §5, §6, §7
  'email-profile',
  'org-defaults',
  'configure-mailboxes',
  'approve-email',
  'test-enable',
  // §9 (optional): the script for the AD FS server and a checklist entry.
  'adfs',
] as const;

/** Steps only the smaller scopes run (not part of `run setup`). */
export const scopeOnlyStepIds = [
  // Test & Enable's "sync items with Exchange from this organization only" (flag 4) for mailboxes whose ACT is tied to another organization.
  'mark-primary-org',
] as const;

/** Every runbook step id (a step's plan, state and journal name one of these). */
export const runbookStepIds = [...setupStepIds, ...scopeOnlyStepIds] as const;
export type SetupStepId = (typeof runbookStepIds)[number];

/** The certificate steps of the rotation that `run setup` reuses (same ids, same step code). */
export const setupCertStepIds = ['import', 'grant-key-access', 'register-crm', 'entra-key-credential', 's2s-settings', 'restart-services'] as const satisfies readonly (typeof rotationStepIds)[number][];

/**
 * What a runbook run covers: the whole set-up, or one of the smaller commands on the same steps.
 * `preflight` runs first in every scope that changes something it needs (setup only: the smaller
 * commands check what they need in their own step).
 */
export const runbookScopeSchema = z.enum(['setup', 'profile', 'tenant', 'configure', 'ews', 'primary-org']);
export type RunbookScope = z.infer<typeof runbookScopeSchema>;

export const scopeStepIds: Readonly<Record<RunbookScope, readonly SetupStepId[]>> = {
  setup: setupStepIds,
  profile: ['email-profile'],
  tenant: ['tenant-id'],
  configure: ['configure-mailboxes'],
  ews: ['ews-access'],
  'primary-org': ['mark-primary-org', 'test-enable'],
};

export { runbookStepTitles };

/** The scopes whose steps work on a mailbox selection (their plan and run carry a filter). */
export const mailboxScopes: ReadonlySet<string> = new Set<RunbookScope>(['setup', 'configure', 'primary-org']);
export const hasMailboxSteps = (scope: string): boolean => mailboxScopes.has(scope);

// ---- preflight -----------------------------------------------------------------------------------

export const preflightCheckIdSchema = z.enum([
  'crm-reachable',
  'crm-admin-role',
  'local-admin',
  'graph-credentials',
  'graph-permissions',
  'certificate',
  'certificate-servers',
  'async-services',
  'ews-access',
  'ews-mailboxes',
]);
export type PreflightCheckId = z.infer<typeof preflightCheckIdSchema>;

export const preflightCheckSchema = z.object({
  id: preflightCheckIdSchema,
  /** ok; warning (shown, does not block: for example the certificate is not on the servers yet and the runbook will import it); failed (blocks). */
  status: z.enum(['ok', 'warning', 'failed']),
  /** What was found. */
  detail: z.string().max(400),
  /** What to do (failed and warning). */
  fix: z.string().max(600).optional(),
}).strict();
export type PreflightCheck = z.infer<typeof preflightCheckSchema>;

export const preflightTitles: Readonly<Record<PreflightCheckId, string>> = {
  'crm-reachable': 'CRM is reachable (WhoAmI)',
  'crm-admin-role': "The agent's CRM account has the System Administrator role",
  'local-admin': 'The agent runs with local administrator rights',
  'graph-credentials': 'The Graph credentials work',
  'graph-permissions': 'The Graph app holds Application.ReadWrite.All and Organization.Read.All',
  certificate: 'The S2S certificate meets the requirements',
  'certificate-servers': 'The certificate is on every async server, with key access',
  'async-services': 'The asynchronous services run',
  'ews-access': 'Exchange Online allows EWS for CRM (EwsEnabled, EwsAllowedAppIDs)',
  'ews-mailboxes': 'No mailbox has EWS disabled in Exchange Online',
};

/** The checklist items no machine can check: the requester confirms them on the plan card. */
export const checklistItemIdSchema = z.enum(['hybrid-connector', 'exchange-enabled']);
export type ChecklistItemId = z.infer<typeof checklistItemIdSchema>;

export const checklistQuestions: Readonly<Record<ChecklistItemId, string>> = {
  'hybrid-connector': 'The free "Dynamics 365 Hybrid Connector" subscription exists on the tenant.',
  'exchange-enabled': 'Exchange Support has enabled on-premises CRM access for the tenant.',
};

// ---- payloads ------------------------------------------------------------------------------------

/** `preflight`: read-only. */
export const preflightInputSchema = z.object({}).strict();

/** `run setup [--dry-run] [filter]`, `profile show|create`, `tenant show|set`, `configure mailboxes [filter]`: read-only plan. */
export const setupPlanInputSchema = z.object({
  scope: runbookScopeSchema,
  /** The mailboxes the mailbox steps cover (setup, configure). */
  filter: mailboxFilterSchema.optional(),
}).strict();

/**
 * The approved run (or its resume). What the approver saw goes with it, so the agent refuses a run
 * whose world changed under the plan (PLAN_CHANGED): another tenant, another certificate, a
 * selection grown well beyond the plan.
 */
export const setupRunInputSchema = z.object({
  scope: runbookScopeSchema,
  filter: mailboxFilterSchema.optional(),
  /** Mailboxes the plan's selection matched (exceedsPlan). */
  plannedMailboxes: z.number().int().nonnegative(),
  /** The tenant id the plan read from Graph (null: the scope does not use it). */
  tenantId: z.string().regex(/^[0-9a-f-]{36}$/).nullable(),
  /** The certificate the plan chose (null: the scope has no certificate step). */
  certThumbprint: thumbprintSchema.nullable(),
  approvedBy: z.string().max(64),
  /** scope setup: the requester who confirmed the checklist on the plan card. */
  checklistConfirmedBy: z.string().max(64).optional(),
  attempt: z.number().int().min(1).max(50),
  resumedBy: z.string().max(64).optional(),
}).strict();

// ---- results -------------------------------------------------------------------------------------

const count = z.number().int().nonnegative();

/** A step as planned: pending = would change (detail says what), done = already done, skipped = not part of this run (detail says why). */
export const runbookStepPlanSchema = z.object({
  id: z.enum(runbookStepIds),
  state: z.enum(['pending', 'done', 'skipped']),
  detail: z.string().max(300),
}).strict();
export type RunbookStepPlan = z.infer<typeof runbookStepPlanSchema>;

export const preflightResultSchema = z.object({
  type: z.literal('preflight'),
  checks: z.array(preflightCheckSchema).max(20),
  /** Every check ok or warning. */
  ok: z.boolean(),
  /** EWS access in Exchange Online (absent from agents older than the EWS checks). */
  ews: ewsAccessReportSchema.optional(),
}).strict();
export type PreflightResult = z.infer<typeof preflightResultSchema>;

/** The email server profile's values the runbook wants (from the agent's PROFILE_* settings), shown on the plan. */
export const profileValuesSchema = z.object({
  name: z.string().max(100),
  description: z.string().max(400),
  useDefaultTenantId: z.boolean(),
  tenantId: z.string().max(36).nullable(),
  autodiscover: z.boolean(),
  incomingUrl: z.string().max(400).nullable(),
  outgoingUrl: z.string().max(400).nullable(),
  processEmailsReceivedAfter: z.string().datetime().nullable(),
  minPollingIntervalMinutes: z.number().int().min(0).max(1440),
  moveUndeliveredEmails: z.boolean(),
  /** The owner's name (the agent's CRM user unless PROFILE_OWNER names another). */
  owner: z.string().max(200),
}).strict();
export type ProfileValues = z.infer<typeof profileValuesSchema>;

export const setupPlanResultSchema = z.object({
  type: z.literal('setup-plan'),
  scope: runbookScopeSchema,
  steps: z.array(runbookStepPlanSchema).max(20),
  /** scope setup: the preflight checks (absent for the smaller scopes). */
  preflight: z.array(preflightCheckSchema).max(20).optional(),
  /** Steps that would change something (0: nothing to change). */
  changes: count,
  /** A failed preflight check or a step that cannot run as configured: the plan cannot be approved (the reasons are in `blockers`). */
  blocked: z.boolean(),
  blockers: z.array(z.object({ message: z.string().max(400), fix: z.string().max(600) }).strict()).max(20),
  /** Mailboxes the selection matched (0 for scopes without mailbox steps). */
  mailboxes: count,
  /** What the run's payload must carry back (PLAN_CHANGED checks). */
  tenantId: z.string().max(36).nullable(),
  certThumbprint: thumbprintSchema.nullable(),
  profile: profileValuesSchema.nullable(),
  /** scope setup (with its preflight) and ews: EWS access in Exchange Online. */
  ews: ewsAccessReportSchema.optional(),
}).strict();
export type SetupPlanResult = z.infer<typeof setupPlanResultSchema>;

export const setupRunResultSchema = z.object({
  type: z.literal('setup-run'),
  scope: runbookScopeSchema,
  steps: z.array(stepStateSchema).max(20),
  /** The steps that changed something in this run (all attempts): empty = nothing to change. */
  changed: z.array(z.enum(runbookStepIds)).max(20),
  /** The Test & Enable report (null: the scope has no test step or nothing was tested). */
  testReport: verificationSchema.nullable(),
  /** The adfs step's script for the AD FS server (null: not asked for, SETUP_ADFS=off). */
  adfsScript: z.string().max(4000).nullable(),
  /** Checklist entries the run leaves for people (for example "run the AD FS script"). */
  checklist: z.array(z.string().max(400)).max(10),
  durationMs: count,
}).strict();
export type SetupRunResult = z.infer<typeof setupRunResultSchema>;
