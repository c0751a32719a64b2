import { checklistQuestions, type ChecklistItemId, type SetupPlanResult } from '../../../jobs/runbook-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { card, executeAction, text, toggle, verbs, type AdaptiveCardJson, type CardAction, type CardElement } from '../common/card-kit.ts';
import { minute, personName } from '../cert/cert-card-parts.ts';
import { decisionLines } from '../cert/cert-plan-card.ts';
import { ewsAllGood, ewsSection } from './ews-card-parts.ts';
import { blockerLines, head, planStepLines, planValueBlocks, preflightLines } from './setup-card-parts.ts';
import { kindOf } from '../../runs/run-kinds.ts';

/**
 * The runbook's plan (`run setup [--dry-run] [filter]`, `profile show|create`, `tenant show|set`,
 * `configure mailboxes [filter]`): "Planning…", then one of: the dry run (no buttons), nothing to
 * change, blocked (each blocker with its fix), or the plan with Approve / Reject (and for `run setup`
 * the checklist the requester confirms first).
 */

/** The toggle ids of the checklist questions (their values come back in the Confirm click's data). */
export function checklistInputId(id: ChecklistItemId): string {
  return `checklist-${id}`;
}

export function setupPlanningCard(run: Run): AdaptiveCardJson {
  const what = kindOf(run).wholeRunbook
    ? 'running the preflight checks and comparing every step of the set-up with what is configured'
    : 'comparing what is configured with what the runbook wants';
  return card([...head(run), text(`Planning… the on-premises agent is ${what}. Nothing is changed yet.`, { subtle: true })]);
}

function planBody(run: Run, plan: SetupPlanResult): CardElement[] {
  const body: CardElement[] = [...head(run)];
  body.push(text('Steps', { weight: 'Bolder' }), planStepLines(plan.steps));
  if (plan.preflight && plan.preflight.length > 0) body.push(text('Preflight', { weight: 'Bolder' }), ...preflightLines(plan.preflight));
  if (plan.ews) body.push(...ewsSection(plan.ews));
  body.push(...planValueBlocks(run, plan));
  return body;
}

/** The plan as its state shows it: dry run, nothing to change, awaiting a decision (buttons), or decided. */
export function setupPlanCard(run: Run, plan: SetupPlanResult): AdaptiveCardJson {
  if (plan.blocked && !run.dryRun) return setupPlanBlockedCard(run, plan);
  const body = planBody(run, plan);
  if (run.dryRun) {
    if (plan.blocked) body.push(text('What blocks a real run', { weight: 'Bolder', color: 'Attention' }), ...blockerLines(plan));
    body.push(text(plan.changes === 0 ? 'Dry run: every step is already done. Nothing was changed.' : `Dry run: ${plan.changes} step${plan.changes === 1 ? '' : 's'} would change something. Nothing was changed.`, { weight: 'Bolder' }));
    return card(body);
  }
  if (plan.changes === 0) {
    body.push(text('Nothing to change: every step is already done.', { color: plan.ews && !ewsAllGood(plan.ews) ? 'Warning' : 'Good', weight: 'Bolder' }));
    return card(body);
  }
  if (run.state !== 'awaiting-approval') {
    if (run.state === 'cancelled') {
      body.push(text(`Cancelled by ${personName(run.cancelRequestedBy) || 'someone'}. Nothing was run.`, { color: 'Attention', weight: 'Bolder' }));
    } else {
      body.push(...decisionLines(run, 'rotation').map((el) => relabel(el)));
    }
    return card(body);
  }
  const actions: CardAction[] = [];
  if (kindOf(run).needsChecklist) {
    body.push(text('Checklist', { weight: 'Bolder' }));
    if (run.checklist) {
      body.push(text(`Confirmed by ${personName(run.checklist.confirmedBy)} at ${minute(run.checklist.confirmedAt)} UTC:`, { color: 'Good' }));
      body.push(text((Object.keys(checklistQuestions) as ChecklistItemId[]).map((id) => `✓ ${checklistQuestions[id]}`).join('\n\n')));
    } else {
      body.push(text(`${personName(run.requester)} confirms these (no machine can check them), then an approver can approve:`, { subtle: true }));
      for (const id of Object.keys(checklistQuestions) as ChecklistItemId[]) body.push(toggle(checklistInputId(id), checklistQuestions[id]));
      actions.push(executeAction('Confirm checklist', verbs.confirmChecklist, run.runId));
    }
  }
  const expires = run.expiresAt ? ` This plan expires at ${minute(run.expiresAt)} UTC.` : '';
  body.push(text(
    kindOf(run).approve === 'second-person'
      ? `Needs an approver other than ${personName(run.requester)} (SETUP_APPROVERS; two-person rule: the set-up may change the S2S certificate).${expires}`
      : `Needs an approver (SETUP_APPROVERS).${expires}`,
    { weight: 'Bolder' },
  ));
  body.push(text('What is approved is this plan: the agent refuses to go on if the tenant, the certificate or the selection changed meanwhile.', { subtle: true }));
  actions.push(executeAction('Approve', verbs.approve, run.runId, 'positive'), executeAction('Reject', verbs.reject, run.runId, 'destructive'));
  return card(body, actions);
}

/** decisionLines speaks of "the rotation": the runbook's words instead. */
function relabel(el: CardElement): CardElement {
  return typeof el['text'] === 'string' ? { ...el, text: el['text'].replace('the rotation is queued', 'the run is queued') } : el;
}

/** A blocked plan: every blocker with its fix; nothing can be approved. */
export function setupPlanBlockedCard(run: Run, plan: SetupPlanResult): AdaptiveCardJson {
  const body: CardElement[] = [...head(run), text(`Cannot run: ${plan.blockers.length === 1 ? 'one thing blocks' : `${plan.blockers.length} things block`} the plan.`, { color: 'Attention', weight: 'Bolder' })];
  body.push(...blockerLines(plan));
  body.push(text('Steps', { weight: 'Bolder' }), planStepLines(plan.steps));
  if (plan.preflight && plan.preflight.length > 0) body.push(text('Preflight', { weight: 'Bolder' }), ...preflightLines(plan.preflight));
  if (plan.ews) body.push(...ewsSection(plan.ews));
  body.push(text('Nothing was changed. Fix each of these, then run the command again.', { subtle: true }));
  return card(body);
}

/** The plan could not be made (the agent failed it, or no agent answered). */
export function setupPlanFailedCard(run: Run): AdaptiveCardJson {
  const e = run.error;
  const body: CardElement[] = [...head(run), text(`The plan could not be made${e ? `: ${e.message}` : '.'}`, { color: 'Attention', weight: 'Bolder' })];
  if (e?.hint) body.push(text(`What to do: ${e.hint}`));
  body.push(text('Nothing was changed.', { subtle: true }));
  return card(body);
}
