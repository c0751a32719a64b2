import type { CertRollbackResult, CertRotateResult } from '../../../jobs/cert-types.ts';
import { touchesRegistration } from '../../runs/cert-rules.ts';
import type { Run } from '../../runs/run-model.ts';
import { card, executeAction, facts, text, title, verbs, type AdaptiveCardJson, type CardAction, type CardElement } from '../common/card-kit.ts';
import { failedStep, personName, runFacts, stepLines, verificationBlock } from './cert-card-parts.ts';
import { certPlanBlockedCard, certPlanCard, certPlanFailedCard, certPlanningCard } from './cert-plan-card.ts';
import { certRollbackCard } from './cert-rollback-card.ts';
import { certStatusCheckingCard, certStatusCard, certStatusFailedCard } from './cert-status-card.ts';
import { stepTitles } from '../../../jobs/cert-types.ts';
import { kindOf } from '../../runs/run-kinds.ts';

/**
 * The run card of an approved rotation or rollback, updated in place: queued, each step with its
 * state, then rotated / rolled back, halted (Resume, Roll back) or failed.
 */
function heading(run: Run): string {
  return kindOf(run).heading;
}

/** The rotation's old certificate (what a rollback restores), null when none was registered. */
export function oldThumbprintOf(run: Run): string | null {
  return run.plan?.type === 'cert-plan' ? (run.plan.current?.thumbprint ?? null) : null;
}

/**
 * Whether the run may have changed CRM's registration: some report of some attempt showed
 * register-crm running, done or failed (the sticky flag; the current steps for a run stored before
 * the flag existed). Then a rotation can be rolled back and not abandoned; a rollback that never
 * touched it changed nothing.
 */
export function registrationTouched(run: Run): boolean {
  return run.registrationTouched === true || touchesRegistration(run.steps);
}

/** The run halted (or failed) because no agent started its job before it expired. */
function notStarted(run: Run): boolean {
  return run.error?.code === 'JOB_NOT_STARTED';
}

function errorLines(run: Run): CardElement[] {
  const e = run.error;
  const out: CardElement[] = [];
  const step = notStarted(run) ? undefined : failedStep(run.steps);
  if (step) out.push(text(`Stopped at: ${stepTitles[step.id]}`, { weight: 'Bolder' }));
  if (e) {
    out.push(text(`${e.message}`, { color: 'Attention' }));
    if (e.hint) out.push(text(`What to do: ${e.hint}`));
  }
  return out;
}

function haltedHeadline(run: Run, rotateResult: CertRotateResult | undefined): string {
  if (rotateResult?.outcome === 'verification-failed') return 'Halted: the new certificate is in place, but the verification mailboxes did not pass Test & Enable.';
  if (notStarted(run)) {
    return run.attempt > 1
      ? `Halted: no agent started attempt ${run.attempt} of the rotation before it expired; this attempt changed nothing.`
      : 'Halted: no agent started the rotation before it expired; nothing was changed.';
  }
  return 'Halted: a step failed.';
}

export function certRunCard(run: Run): AdaptiveCardJson {
  const body: CardElement[] = [title(heading(run)), runFacts(run)];
  const steps = run.steps ?? [];
  const rotateResult = run.result?.type === 'cert-rotate' ? run.result : undefined;
  const rollbackResult = run.result?.type === 'cert-rollback' ? run.result : undefined;
  let actions: CardAction[] = [];
  switch (run.state) {
    case 'approved':
      body.push(text(run.resumedBy ? `Resumed by ${personName(run.resumedBy)} (attempt ${run.attempt}): waiting for the on-premises agent to start. Steps already done are skipped.` : 'Queued: waiting for the on-premises agent to start.', { subtle: !run.resumedBy, ...(run.resumedBy ? { weight: 'Bolder' } : {}) }));
      break;
    case 'running':
      if (run.resumedBy) body.push(text(`Resumed by ${personName(run.resumedBy)} (attempt ${run.attempt}).`, { subtle: true }));
      if (steps.length === 0) body.push(text('Started.', { subtle: true }));
      break;
    case 'succeeded':
      body.push(text(
        rollbackResult
          ? `Rolled back: ${rollbackResult.restoredThumbprint} is the S2S certificate again. Results below.`
          : rotateResult
            ? `Rotated: ${rotateResult.newThumbprint} is the S2S certificate. Results below.`
            : 'Finished.',
        { color: 'Good', weight: 'Bolder' },
      ));
      break;
    case 'halted': {
      body.push(text(haltedHeadline(run, rotateResult), { color: 'Attention', weight: 'Bolder' }));
      body.push(...errorLines(run));
      body.push(...verificationBlock(rotateResult?.verification ?? null));
      if (run.rollbackRunId) {
        // A rollback waits for its approval: no Resume, no second Roll back until it is decided.
        body.push(text(`Rollback requested by ${personName(run.rollbackRequestedBy)}: waiting for approval on the rollback card (run ${run.rollbackRunId}). If it is rejected or expires, Resume and Roll back come back here.`, { weight: 'Bolder' }));
        break;
      }
      if (run.failedRollbackRunId) {
        body.push(text(`The rollback (run ${run.failedRollbackRunId}) failed before changing CRM's registration: see its card for why. This rotation is halted again.`, { weight: 'Bolder' }));
      }
      actions = [executeAction('Resume', verbs.resume, run.runId, 'positive')];
      const touched = registrationTouched(run);
      const canRollBack = oldThumbprintOf(run) !== null && touched;
      if (canRollBack) {
        actions.push(executeAction('Roll back', verbs.rollback, run.runId, 'destructive'));
        body.push(text('Resume (approvers) runs the rotation again; steps already done are skipped. Roll back (operators, approvers) makes the old certificate the issuer again, after a second person approves.', { subtle: true }));
      } else if (oldThumbprintOf(run) !== null) {
        body.push(text('CRM\'s registration was not changed: the old certificate is still the S2S token issuer, so there is nothing to roll back. Resume (approvers) runs the rotation again; steps already done are skipped. Abandon (approvers) gives it up, so another rotation (another PFX) can be approved.', { subtle: true }));
      } else {
        body.push(text('Resume (approvers) runs the rotation again; steps already done are skipped. There is no old certificate to roll back to.', { subtle: true }));
      }
      // register-crm never ran: the rotation can also be given up (it holds the deployment's one change).
      if (!touched) actions.push(executeAction('Abandon', verbs.abandon, run.runId, 'default'));
      break;
    }
    case 'superseded':
      body.push(text('Halted: superseded by a rollback.', { color: 'Attention', weight: 'Bolder' }));
      body.push(...errorLines(run));
      body.push(text(`Rollback requested by ${personName(run.supersededBy ?? run.rollbackRequestedBy)} and approved${run.rollbackRunId ? ` (run ${run.rollbackRunId})` : ''}: see the rollback card.`, { weight: 'Bolder' }));
      break;
    case 'failed':
      if (run.error?.code === 'ABANDONED') {
        body.push(text(`${run.error.message} What the rotation did before it stopped is listed in the steps (a certificate imported, a key credential added in Entra ID); \`@setup cert status\` shows it, and a later rotation reuses or replaces it.`, { weight: 'Bolder' }));
        break;
      }
      body.push(text(kindOf(run).rollsBack ? 'The rollback failed.' : `Failed${run.error ? ` (${run.error.code})` : ''}.`, { color: 'Attention', weight: 'Bolder' }));
      body.push(...errorLines(run));
      body.push(...verificationBlock(rollbackResult?.verification ?? null));
      if (kindOf(run).rollsBack && run.parentRunId && !registrationTouched(run)) {
        body.push(text(`Nothing was changed by this rollback: CRM's registration is as the rotation left it. The rotation (run ${run.parentRunId}) is halted again: fix the cause as the hint says, then Roll back there again, or Resume it.`));
      } else if (kindOf(run).rollsBack) {
        body.push(text('What next: fix the cause as the hint says, then `@setup cert rotate` again with a working certificate; if mail keeps failing, contact your Dynamics 365 partner or Microsoft support with this run id.'));
      }
      break;
    default:
      body.push(text(`State: ${run.state}`, { subtle: true }));
  }
  if (steps.length > 0) body.push(text('Steps', { weight: 'Bolder' }), stepLines(steps));
  return card(body, actions);
}

/** The results card posted in the thread when a rotation or rollback ends. */
export function certResultsCard(run: Run, result: CertRotateResult | CertRollbackResult): AdaptiveCardJson {
  const seconds = Math.round(result.durationMs / 1000);
  const ok = result.outcome !== 'verification-failed';
  const body: CardElement[] = [title(`Results: certificate ${result.type === 'cert-rollback' ? 'rollback' : 'rotation'} (run ${run.runId})`, ok ? 'Good' : 'Warning')];
  if (result.type === 'cert-rotate') {
    const retire = result.steps.find((s) => s.id === 'retire-old');
    const retired = !result.oldThumbprint
      ? 'there was none'
      : retire?.state === 'done'
        ? 'removed from Entra ID'
        : `kept${retire?.detail ? ` (${retire.detail})` : ''}`;
    body.push(facts([
      ['New certificate', result.newThumbprint],
      ['Old certificate', result.oldThumbprint ?? 'none'],
      ['Old key credential', retired],
      ['Duration', `${seconds} s`],
    ]));
  } else {
    const retire = result.steps.find((s) => s.id === 'retire-failed');
    const failedKey = retire?.state === 'done'
      ? 'removed from Entra ID'
      : `kept${retire?.detail ? ` (${retire.detail})` : result.outcome === 'verification-failed' ? ' (the verification did not pass)' : ''}`;
    body.push(facts([
      ['Restored certificate', result.restoredThumbprint],
      ...(run.rollback ? [['Failed certificate', run.rollback.failedThumbprint] as [string, string]] : []),
      ['Failed certificate\'s key credential', failedKey],
      ['Duration', `${seconds} s`],
    ]));
  }
  body.push(...verificationBlock(result.verification));
  return card(body);
}

/** The card a certificate run shows in its current state (clicks, timers, reposts). */
export function currentCertCard(run: Run): AdaptiveCardJson {
  const spec = kindOf(run);
  if (spec.immediate) {
    // cert status, cert watch: the check.
    if (run.state === 'running') return certStatusCheckingCard(run);
    return run.result?.type === 'cert-status' ? certStatusCard(run, run.result) : certStatusFailedCard(run);
  }
  if (spec.rollsBack) return ['awaiting-approval', 'approved', 'rejected', 'expired'].includes(run.state) ? certRollbackCard(run) : certRunCard(run);
  // A rotation.
  const plan = run.plan?.type === 'cert-plan' ? run.plan : undefined;
  switch (run.state) {
    case 'planning':
      return certPlanningCard(run);
    case 'plan-failed':
      return plan?.blocked ? certPlanBlockedCard(run, plan) : certPlanFailedCard(run);
    case 'awaiting-approval':
    case 'rejected':
    case 'expired':
      return plan ? certPlanCard(run, plan) : certPlanFailedCard(run);
    case 'approved':
      // Just approved: the plan with who approved it; a resumed attempt: the run card.
      return plan && !run.resumedBy ? certPlanCard(run, plan) : certRunCard(run);
    default:
      return certRunCard(run);
  }
}
