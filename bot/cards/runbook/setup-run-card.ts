import { stepTitles } from '../../../jobs/cert-types.ts';
import { runbookStepIds, type SetupRunResult } from '../../../jobs/runbook-types.ts';
import { kindOf } from '../../runs/run-kinds.ts';
import type { Run } from '../../runs/run-model.ts';
import { bullets, card, codeBlock, executeAction, facts, text, title, verbs, type AdaptiveCardJson, type CardAction, type CardElement } from '../common/card-kit.ts';
import { failedStep, personName, verificationBlock } from '../cert/cert-card-parts.ts';
import { preflightCard, preflightCheckingCard, preflightFailedCard } from './preflight-card.ts';
import { setupPlanCard, setupPlanFailedCard, setupPlanningCard } from './setup-plan-card.ts';
import { head, nextStep, runStepLines, runbookHeading } from './setup-card-parts.ts';

/**
 * The run card of an approved runbook run, updated in place: queued, each step with its state, then
 * succeeded (results card in the thread; a cancel that came after the last step says so), halted (the
 * failed step, the cause, what to do, Retry step and Cancel), cancelled (also when a step failed after
 * a cancel was asked) or failed (an error about the whole run: ask for a new plan).
 */
export function setupRunCard(run: Run): AdaptiveCardJson {
  const body: CardElement[] = [...head(run)];
  const steps = run.steps ?? [];
  let actions: CardAction[] = [];
  const cancelAsked = run.cancelRequestedBy && (run.state === 'approved' || run.state === 'running')
    ? [text(`Cancel requested by ${personName(run.cancelRequestedBy)}: the run stops before its next step; steps done stay done.`, { color: 'Warning', weight: 'Bolder' })]
    : [];
  switch (run.state) {
    case 'approved':
      body.push(text(run.resumedBy ? `Retried by ${personName(run.resumedBy)} (attempt ${run.attempt}): waiting for the on-premises agent to start. Steps already done are skipped.` : 'Queued: waiting for the on-premises agent to start.', { subtle: !run.resumedBy }));
      body.push(...cancelAsked);
      break;
    case 'running':
      body.push(...cancelAsked);
      if (steps.length === 0) body.push(text('Started.', { subtle: true }));
      break;
    case 'succeeded': {
      const changed = run.result?.type === 'setup-run' ? run.result.changed : [];
      body.push(text(changed.length === 0 ? 'Finished: nothing to change, every step was already done.' : `Finished: every step is done (${changed.length} changed something). Results below.`, { color: 'Good', weight: 'Bolder' }));
      body.push(...cancelTooLate(run));
      break;
    }
    case 'halted': {
      const step = run.error?.code === 'JOB_NOT_STARTED' ? undefined : failedStep(steps);
      body.push(text(run.error?.code === 'JOB_NOT_STARTED' ? 'Halted: no agent started the run before its job expired; this attempt changed nothing.' : `Halted${step ? ` at: ${stepTitles[step.id]}` : ': a step failed'}.`, { color: 'Attention', weight: 'Bolder' }));
      if (run.error) {
        body.push(text(`Cause (${run.error.code}): ${run.error.message}`, { color: 'Attention' }));
        if (run.error.hint) body.push(text(`What to do: ${run.error.hint}`));
      }
      body.push(text('After the fix, Retry step (approvers; or `@setup resume <run>`) continues from the failed step: steps already done are skipped. Cancel (the requester or an approver) stops the run; steps done stay done.', { subtle: true }));
      actions = [executeAction('Retry step', verbs.retryStep, run.runId, 'positive'), executeAction('Cancel', verbs.cancel, run.runId, 'destructive')];
      break;
    }
    case 'cancelled': {
      const by = personName(run.cancelRequestedBy) || 'someone';
      if (run.error && run.error.code !== 'CANCELLED') {
        // Asked to cancel while a step ran, and that step (or the run) then failed: it ends here.
        const step = failedStep(steps);
        body.push(text(`Cancelled by ${by}: the run failed${step ? ` at ${stepTitles[step.id]}` : ''} after the cancel was asked, so it ends here, not halted; steps done stay done.`, { color: 'Attention', weight: 'Bolder' }));
        body.push(text(`Cause (${run.error.code}): ${run.error.message}`, { color: 'Attention' }));
        if (run.error.hint) body.push(text(`What to do: ${run.error.hint}`));
        break;
      }
      const before = nextStep(steps);
      body.push(text(`Cancelled by ${by}${before ? ` before ${stepTitles[before.id]}` : ''}; steps done stay done.`, { color: 'Attention', weight: 'Bolder' }));
      break;
    }
    case 'failed':
      body.push(text(`Failed${run.error ? ` (${run.error.code}): ${run.error.message}` : '.'}`, { color: 'Attention', weight: 'Bolder' }));
      if (run.error?.hint) body.push(text(`What to do: ${run.error.hint}`));
      if (kindOf(run).runbook) {
        body.push(text(`This run has ended: it failed outside its steps, so a retry could only fail the same way${kindOf(run).certChange ? '; it no longer holds the certificate-change slot' : ''}. Ask for a new plan: \`@setup ${kindOf(run).newPlanCommand}\`.`));
      }
      break;
    default:
      body.push(text(`State: ${run.state}`, { subtle: true }));
  }
  if (steps.length > 0) body.push(text('Steps', { weight: 'Bolder' }), runStepLines(steps));
  return card(body, actions);
}

/** The results card posted in the thread when a runbook run succeeds. */
export function setupResultsCard(run: Run, result: SetupRunResult): AdaptiveCardJson {
  const seconds = Math.round(result.durationMs / 1000);
  const failedTests = (result.testReport?.failed ?? 0) + (result.testReport?.noResult ?? 0);
  const body: CardElement[] = [title(`Results: ${runbookHeading(run.kind).toLowerCase()} (run ${run.runId})`, failedTests > 0 ? 'Warning' : 'Good')];
  body.push(...cancelTooLate(run));
  body.push(facts([
    ['Steps changed', result.changed.length === 0 ? 'nothing to change' : String(result.changed.length)],
    ['Duration', `${seconds} s`],
  ]));
  body.push(text('Steps', { weight: 'Bolder' }), runStepLines(result.steps));
  body.push(text('What changed', { weight: 'Bolder' }));
  body.push(result.changed.length === 0
    ? text('Nothing to change: every step was already done.')
    : bullets(result.changed.map((id) => {
      const detail = result.steps.find((s) => s.id === id)?.detail;
      return `${stepTitles[id]}${detail ? `: ${detail}` : ''}`;
    }), runbookStepIds.length));
  const report = verificationBlock(result.testReport);
  if (report.length > 0) {
    // The shared block is headed "Verification": for the runbook it is the Test & Enable step's report.
    report[0] = text('Test & Enable report', { weight: 'Bolder' });
    body.push(...report);
  }
  if (result.adfsScript) {
    body.push(text('AD FS: run this script on the AD FS server (the agent does not run there)', { weight: 'Bolder' }), codeBlock(result.adfsScript));
  }
  if (result.checklist.length > 0) body.push(text('Checklist: left for people', { weight: 'Bolder' }), bullets(result.checklist));
  return card(body);
}

/** A cancel asked for while the last step ran: the run finished anyway. */
function cancelTooLate(run: Run): CardElement[] {
  return run.cancelRequestedBy
    ? [text(`The cancel ${personName(run.cancelRequestedBy)} asked for came too late: the run had finished its last step. Nothing was undone.`, { color: 'Warning' })]
    : [];
}

/** The card a runbook or preflight run shows in its current state (clicks, timers, reposts). */
export function currentSetupCard(run: Run): AdaptiveCardJson {
  if (kindOf(run).immediate) {
    if (run.state === 'running') return preflightCheckingCard(run);
    return run.result?.type === 'preflight' ? preflightCard(run, run.result) : preflightFailedCard(run);
  }
  if (!kindOf(run).runbook) return setupRunCard(run);
  const plan = run.plan?.type === 'setup-plan' ? run.plan : undefined;
  switch (run.state) {
    case 'planning':
      return setupPlanningCard(run);
    case 'plan-failed':
      return plan ? setupPlanCard(run, plan) : setupPlanFailedCard(run);
    case 'awaiting-approval':
    case 'rejected':
    case 'expired':
      return plan ? setupPlanCard(run, plan) : setupPlanFailedCard(run);
    case 'approved':
      // Just approved: the plan with who approved it; a retried attempt: the run card.
      return plan && !run.resumedBy && !run.cancelRequestedBy ? setupPlanCard(run, plan) : setupRunCard(run);
    case 'succeeded':
      // A dry run or nothing to change ends with its plan; a run that ran ends with its run card.
      return run.result?.type === 'setup-run' || !plan ? setupRunCard(run) : setupPlanCard(run, plan);
    case 'cancelled':
      // Cancelled before it ran: the plan with who cancelled it.
      return plan && !run.approval && run.attempt === 1 ? setupPlanCard(run, plan) : plan || run.steps ? setupRunCard(run) : cancelledBeforePlanCard(run);
    default:
      return setupRunCard(run);
  }
}

function cancelledBeforePlanCard(run: Run): AdaptiveCardJson {
  return card([...head(run), text(`Cancelled by ${personName(run.cancelRequestedBy) || 'someone'} before the plan arrived. Nothing was run.`, { color: 'Attention', weight: 'Bolder' })]);
}
