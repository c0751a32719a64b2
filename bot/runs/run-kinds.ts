import { z } from 'zod';
import type { JobType } from '../../jobs/job-types.ts';
import { hasMailboxSteps, type RunbookScope } from '../../jobs/runbook-types.ts';

/**
 * The table of run kinds: everything the bot decides by a run's kind is a field here, so adding a
 * kind is one row (and its command and cards). Nothing else tests `run.kind` against a literal.
 */

/** Which cards draw the run (bot/cards/<family>/) and which report handlers take its results (bot/reports/). */
export type RunFamily = 'mailboxes' | 'cert' | 'runbook';

/**
 * Who may approve, or reject / withdraw, a run's plan (bot/inbound/authorizer.ts decides):
 * `approver` an approver; `test-confirmer` the operator who asked or an approver; `requester-or-approver`
 * the person who asked or an approver; `second-person` an approver other than the person who asked.
 */
export type DecisionRight = 'approver' | 'test-confirmer' | 'requester-or-approver' | 'second-person';

export interface RunKindSpec {
  /** The kind in `jobs` lists (what was typed). */
  label: string;
  /** The title of its cards. */
  heading: string;
  family: RunFamily;
  /** A scope of the runbook: its jobs are setup-plan and setup-run with this scope. */
  runbook: boolean;
  /** The job that starts it (a plan, or the check itself), and every job whose reports belong to it. */
  firstJob: JobType;
  jobTypes: readonly JobType[];
  /** The job its approval (or a resume) starts; absent: nothing is approved. */
  approvedJob?: 'approve' | 'test' | 'cert-rotate' | 'cert-rollback' | 'setup-run';
  /** Started with its job, no plan and no approval (a check: running → succeeded | failed). */
  immediate: boolean;
  /** Who may approve and who may reject its plan; absent: nothing to decide. */
  approve?: DecisionRight;
  reject?: DecisionRight;
  /** For the two-person rule's refusal: "You asked for this <what>; another approver must approve it." */
  what: string;
  /** Holds the deployment's one certificate change (cert-active key) from approval to a final state. */
  certChange: boolean;
  /** A halted run runs again as attempt n + 1 (Resume, Retry step, `resume`). */
  resumable: boolean;
  /** `cancel` stops it between steps while it runs, and cancels it when halted. */
  cancellable: boolean;
  /** The requester confirms the checklist on the plan card before it can be approved. */
  needsChecklist: boolean;
  /** A halted run offers Roll back and Abandon (a certificate rotation). */
  rollsForward: boolean;
  /** It rolls back its parent rotation (parentRunId), which it supersedes while it is approved. */
  rollsBack: boolean;
  /** Its result goes to the certificate expiry watch, not to a card. */
  watch: boolean;
  /** Its steps include mailboxes (the run keeps a mailbox filter). */
  hasMailboxSteps: boolean;
  /** What to type for a new plan of the same kind ("then … again"). */
  newPlanCommand: string;
  /** Its plan is confirmed (Confirm / Cancel, "Confirmed by"), not approved (Approve / Reject). */
  confirms: boolean;
  /** What its approved job changes, as the person will recognise it in CRM (mailbox runs). */
  changes?: string;
  /** The whole runbook (`run setup`): preflight plus every step; `--dry-run` is its show. */
  wholeRunbook: boolean;
  /** Its plan card shows the tenant id and the S2S certificate even when the plan did not read them. */
  showsTenant: boolean;
  showsCertificate: boolean;
}

type Defaulted = 'hasMailboxSteps' | 'runbook' | 'cancellable' | 'resumable' | 'confirms' | 'wholeRunbook' | 'showsTenant' | 'showsCertificate';
type Row = Omit<RunKindSpec, Defaulted> & Partial<Record<Exclude<Defaulted, 'hasMailboxSteps'>, boolean>>;

const check = { immediate: true, certChange: false, needsChecklist: false, rollsForward: false, rollsBack: false, watch: false, what: 'run' } as const;
const runbookRow = (label: string, heading: string, newPlanCommand: string, extra: Partial<Row> = {}): Row => ({
  label,
  heading,
  family: 'runbook',
  runbook: true,
  resumable: true,
  cancellable: true,
  firstJob: 'setup-plan',
  jobTypes: ['setup-plan', 'setup-run'],
  approvedJob: 'setup-run',
  immediate: false,
  approve: 'approver',
  reject: 'requester-or-approver',
  what: 'run',
  certChange: false,
  needsChecklist: false,
  rollsForward: false,
  rollsBack: false,
  watch: false,
  newPlanCommand,
  ...extra,
});

const rows = {
  approve: { label: 'approve mailboxes', heading: 'Approve mailboxes', family: 'mailboxes', firstJob: 'plan', jobTypes: ['plan', 'approve'], approvedJob: 'approve', ...check, immediate: false, approve: 'approver', reject: 'approver', newPlanCommand: 'approve mailboxes', changes: 'Approve Email: emailrouteraccessapproval → Approved' },
  test: { label: 'test mailboxes', heading: 'Test & Enable mailboxes', family: 'mailboxes', firstJob: 'plan', jobTypes: ['plan', 'test'], approvedJob: 'test', ...check, immediate: false, approve: 'test-confirmer', reject: 'test-confirmer', newPlanCommand: 'test mailboxes', confirms: true,
    changes: 'Test & Enable: testemailconfigurationscheduled → true, then wait for each mailbox\'s result' },
  status: { label: 'status', heading: 'Status', family: 'mailboxes', firstJob: 'status', jobTypes: ['status'], ...check, newPlanCommand: 'status' },
  'cert-status': { label: 'cert status', heading: 'S2S certificate status', family: 'cert', firstJob: 'cert-status', jobTypes: ['cert-status'], ...check, newPlanCommand: 'cert status' },
  'cert-watch': { label: 'cert watch', heading: 'S2S certificate status', family: 'cert', firstJob: 'cert-status', jobTypes: ['cert-status'], ...check, watch: true, newPlanCommand: 'cert status' },
  'cert-rotate': {
    label: 'cert rotate', heading: 'Rotate the S2S certificate', family: 'cert', firstJob: 'cert-plan', jobTypes: ['cert-plan', 'cert-rotate'], approvedJob: 'cert-rotate', ...check, immediate: false,
    approve: 'second-person', reject: 'requester-or-approver', what: 'rotation', certChange: true, resumable: true, rollsForward: true, newPlanCommand: 'cert rotate',
  },
  'cert-rollback': {
    label: 'cert rollback', heading: 'Roll back the S2S certificate', family: 'cert', firstJob: 'cert-rollback', jobTypes: ['cert-rollback'], approvedJob: 'cert-rollback', ...check, immediate: false,
    approve: 'second-person', reject: 'requester-or-approver', what: 'rollback', certChange: true, rollsBack: true, newPlanCommand: 'cert rotate',
  },
  preflight: { label: 'preflight', heading: 'Preflight checks', family: 'runbook', firstJob: 'preflight', jobTypes: ['preflight'], ...check, newPlanCommand: 'preflight' },
  setup: runbookRow('run setup', 'Set up server-side sync (run setup)', 'run setup', { approve: 'second-person', what: 'set-up run', certChange: true, needsChecklist: true, wholeRunbook: true, showsTenant: true, showsCertificate: true }),
  profile: runbookRow('profile', 'Email server profile, Exchange Online (Hybrid)', 'profile create'),
  tenant: runbookRow('tenant', 'Exchange Online tenant ID (S2STenantId)', 'tenant set', { showsTenant: true }),
  configure: runbookRow('configure mailboxes', 'Configure mailboxes (profile, delivery methods, EWS)', 'configure mailboxes'),
  ews: runbookRow('ews', 'EWS access for CRM in Exchange Online', 'ews allow'),
  'primary-org': runbookRow('sync from this organization only', 'Sync items with Exchange from this organization only, then Test & Enable', 'sync this org only'),
} as const satisfies Record<string, Row>;

export type RunKind = keyof typeof rows;
const kindNames = Object.keys(rows) as [RunKind, ...RunKind[]];
export const runKindSchema = z.enum(kindNames);

export const runKinds: Readonly<Record<RunKind, RunKindSpec>> = Object.freeze(
  Object.fromEntries(
    kindNames.map((kind) => {
      const row: Row = rows[kind];
      const spec: RunKindSpec = {
        runbook: false,
        resumable: false,
        cancellable: false,
        confirms: false,
        wholeRunbook: false,
        showsTenant: false,
        showsCertificate: false,
        ...row,
        hasMailboxSteps: hasMailboxSteps(kind),
      };
      return [kind, Object.freeze(spec)];
    }),
  ) as Record<RunKind, RunKindSpec>,
);

/** The row of a run's kind. */
export function kindOf(run: { kind: RunKind }): RunKindSpec {
  return runKinds[run.kind];
}

/** The run kinds of the runbook (`run setup` and the smaller commands on its steps); the kind is the job's scope. */
export type RunbookKind = { [K in RunKind]: (typeof rows)[K] extends { runbook: true } ? K : never }[RunKind];
export const runbookKinds = kindNames.filter((k) => runKinds[k].runbook) as RunbookKind[];
export function isRunbookKind(kind: RunKind): kind is RunbookKind {
  return runKinds[kind].runbook;
}
/** Every runbook kind is a scope of the contract (jobs/runbook-types.ts): this fails to compile otherwise. */
export const runbookKindsAreScopes: RunbookKind extends RunbookScope ? true : never = true;
