import type { MailboxFilter } from '../../jobs/mailbox-filter.ts';
import type { ProfileValues, RunbookScope, SetupStepId } from '../../jobs/runbook-types.ts';
import type { StepId, Verification } from '../../jobs/cert-types.ts';
import type { StepHandle, StepOutcome } from './runner.ts';
import type { JobContext } from '../runtime/job-context.ts';

/**
 * One step of a multi-step job: a certificate rotation or rollback (steps/cert/*.ts) or the runbook
 * (docs/runbook.md; steps/runbook/*.ts); steps/table.ts lists them. A plan calls `check` for
 * every step (read-only); the run calls `apply` through the StepRunner (steps/runner.ts), which
 * checks again, changes only what differs, reads back what it changed and throws a SetupError
 * (code, message, hint: what to do) when the read-back does not show it.
 *
 * A step that depends on an earlier one (the mailbox steps on the profile) finds what it needs in
 * `facts`; in a plan the earlier step has not run, so the fact may be missing: the check then says
 * what it would do once the earlier step has ("would configure 540 mailboxes with the new profile").
 */
export interface RunbookFacts {
  /** The agent's CRM user (WhoAmI.UserId). */
  crmUserId?: string;
  /** The Exchange Online tenant id (Graph /organization). */
  tenantId?: string;
  /** The runbook's email server profile (PROFILE_NAME), once it exists. */
  profileId?: string;
  /**
   * Mailboxes configure-mailboxes changed in this run (kept in its journal data across attempts): test-enable tests them even when their
   * last test (with the old profile or delivery methods) succeeded.
   */
  reconfigured?: Set<string>;
  /**
   * configure-mailboxes changed more mailboxes than its journal data holds ids for (an earlier
   * attempt's "many" marker): test-enable tests every mailbox of the selection.
   */
  reconfiguredAll?: boolean;
}

export interface RunbookEnv {
  ctx: JobContext;
  scope: RunbookScope;
  /** The mailboxes the mailbox steps cover (scope setup and configure; `all` when none was typed). */
  filter: MailboxFilter;
  /** The profile the runbook wants (from the agent's PROFILE_* settings). */
  profile: ProfileValues & { ownerId: string | null };
  facts: RunbookFacts;
}

/** What every step's env has: the job context. */
export interface StepEnv {
  ctx: JobContext;
}

export interface StepCheck {
  /** True: nothing to do ("already done"). */
  upToDate: boolean;
  /**
   * The plan's state when it is not done or pending: skipped (nothing to do by design: retire-old
   * with CERT_RETIRE_OLD=keep-until-expiry) or failed (the step cannot run as things are: a
   * rotation plan with it is blocked).
   */
  state?: 'skipped' | 'failed';
  /** "already done: …" or "would …" (what the plan card shows), at most 300 characters. */
  detail: string;
  /** The check cannot pass as configured (a missing setting, a missing profile for `configure` alone): the plan is blocked. */
  blocker?: { message: string; fix: string };
}

export interface Step<E extends StepEnv = StepEnv> {
  id: StepId;
  check(env: E): Promise<StepCheck>;
  /** Why the run passes the step by without running it (no journal entry; a verification that failed before retire-old), or undefined. */
  skip?(env: E): string | undefined;
  /**
   * Check, change what differs, read back. `wrote: true` when something was written (the run's
   * `changed` list); StepOutcome.changed keeps its meaning: the async services must be restarted
   * to pick it up. test-enable returns its report in `testReport` (also when it throws: then in
   * the SetupError's details.testReport).
   */
  apply(env: E, step: StepHandle): Promise<StepOutcome & { wrote: boolean; testReport?: Verification }>;
}

/** A step of the runbook: a Step with the runbook's env and one of its step ids. */
export interface RunbookStep extends Step<RunbookEnv> {
  id: SetupStepId;
}

/** The plan's state of a step from its check. */
export function plannedState(check: StepCheck): 'pending' | 'done' | 'skipped' | 'failed' {
  return check.state ?? (check.upToDate ? 'done' : 'pending');
}
