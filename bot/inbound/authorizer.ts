import type { DecisionRight } from '../runs/run-kinds.ts';

/**
 * Who may do what. Identities are Entra object ids (activity.from.aadObjectId), matched against
 * SETUP_OPERATORS and SETUP_APPROVERS; names and card data are never trusted. Empty lists mean
 * nobody (fail closed).
 */
export type Permission = 'run-command' | 'approve' | 'confirm-test';

export type AuthzDecision =
  | { allowed: true }
  | { allowed: false; reason: string };

export interface AuthorizerOptions {
  operators: readonly string[];
  approvers: readonly string[];
}

export interface ConfirmContext {
  /** The run's requester (for a test run the requester may confirm it). */
  requesterAadObjectId: string;
}

export class Authorizer {
  readonly #operators: ReadonlySet<string>;
  readonly #approvers: ReadonlySet<string>;

  constructor(options: AuthorizerOptions) {
    this.#operators = new Set(options.operators.map(normaliseId).filter((id) => id.length > 0));
    this.#approvers = new Set(options.approvers.map(normaliseId).filter((id) => id.length > 0));
  }

  isOperator(aadObjectId: string | undefined): boolean {
    const id = normaliseId(aadObjectId);
    return id.length > 0 && this.#operators.has(id);
  }

  isApprover(aadObjectId: string | undefined): boolean {
    const id = normaliseId(aadObjectId);
    return id.length > 0 && this.#approvers.has(id);
  }

  /** Operators run commands; approvers may too. */
  canRunCommands(aadObjectId: string | undefined): AuthzDecision {
    if (this.isOperator(aadObjectId) || this.isApprover(aadObjectId)) return { allowed: true };
    return {
      allowed: false,
      reason: `Only the operators listed in SETUP_OPERATORS (or the approvers in SETUP_APPROVERS) may run commands; ask your CRM administrator to add your Entra object ID ${describeId(aadObjectId)}.`,
    };
  }

  /** Approving mailboxes changes CRM: approvers only. */
  canApprove(aadObjectId: string | undefined): AuthzDecision {
    if (this.isApprover(aadObjectId)) return { allowed: true };
    return {
      allowed: false,
      reason: `Only the approvers listed in SETUP_APPROVERS may approve or reject this; ask your CRM administrator to add your Entra object ID ${describeId(aadObjectId)}, or ask an approver.`,
    };
  }

  /**
   * Approve or reject / withdraw a run's plan, by the right its kind asks for (bot/runs/run-kinds.ts):
   * the one place that says who may decide a plan, the two-person rule included.
   */
  canDecide(right: DecisionRight, aadObjectId: string | undefined, context: ConfirmContext & { what: string }): AuthzDecision {
    switch (right) {
      case 'approver':
        return this.canApprove(aadObjectId);
      case 'test-confirmer':
        return this.canConfirmTest(aadObjectId, context);
      case 'requester-or-approver':
        return this.canRejectOrWithdraw(aadObjectId, context);
      case 'second-person':
        return this.canApproveAsSecondPerson(aadObjectId, context);
    }
  }

  /**
   * Two-person rule (certificate rotation and rollback, `run setup`: it may change the S2S
   * certificate): an approver, and not the person who asked for it. Checked on the server for every
   * click, by Entra object id.
   */
  canApproveAsSecondPerson(aadObjectId: string | undefined, context: ConfirmContext & { what: string }): AuthzDecision {
    const approver = this.canApprove(aadObjectId);
    if (!approver.allowed) return approver;
    const id = normaliseId(aadObjectId);
    if (id === normaliseId(context.requesterAadObjectId)) {
      return { allowed: false, reason: `You asked for this ${context.what}; another approver must approve it.` };
    }
    return { allowed: true };
  }

  /** Reject (or withdraw) a certificate run: an approver, or the person who asked for it. */
  canRejectOrWithdraw(aadObjectId: string | undefined, context: ConfirmContext): AuthzDecision {
    if (this.isApprover(aadObjectId)) return { allowed: true };
    const id = normaliseId(aadObjectId);
    if (id.length > 0 && id === normaliseId(context.requesterAadObjectId)) return { allowed: true };
    return {
      allowed: false,
      reason: `Only the person who asked for this or an approver listed in SETUP_APPROVERS may reject it; ask your CRM administrator to add your Entra object ID ${describeId(aadObjectId)} to SETUP_APPROVERS.`,
    };
  }

  /** A test run may be confirmed by the operator who asked for it (if still an operator) or an approver. */
  canConfirmTest(aadObjectId: string | undefined, context: ConfirmContext): AuthzDecision {
    if (this.isApprover(aadObjectId)) return { allowed: true };
    const id = normaliseId(aadObjectId);
    if (id.length > 0 && id === normaliseId(context.requesterAadObjectId) && this.isOperator(id)) return { allowed: true };
    return {
      allowed: false,
      reason: `Only the operator who asked for this test or an approver listed in SETUP_APPROVERS may confirm or cancel it; ask your CRM administrator to add your Entra object ID ${describeId(aadObjectId)} to SETUP_APPROVERS.`,
    };
  }
}

/** Whether two Entra object ids are the same person (case and spaces aside; an empty id is nobody). */
export function isSamePerson(a: string | undefined, b: string | undefined): boolean {
  const n = normaliseId(a);
  return n.length > 0 && n === normaliseId(b);
}

function normaliseId(id: string | undefined): string {
  return (id ?? '').trim().toLowerCase();
}

function describeId(id: string | undefined): string {
  const n = normaliseId(id);
  return n.length > 0 ? n : '(unknown: Teams sent no Entra object ID)';
}
