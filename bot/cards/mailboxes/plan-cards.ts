import { describeFilter } from '../../../jobs/mailbox-filter.ts';
import type { PlanResult } from '../../../jobs/job-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { bullets, card, executeAction, facts, text, title, verbs, type AdaptiveCardJson, type CardElement } from '../common/card-kit.ts';
import { kindOf, runKinds } from '../../runs/run-kinds.ts';

export function actionLabel(kind: Run['kind']): string {
  return runKinds[kind].heading;
}

/** What the write does, as the person will recognise it in CRM. */
export function changeDescription(kind: Run['kind']): string {
  return runKinds[kind].changes ?? '';
}

function header(run: Run): CardElement[] {
  const rows: [string, string][] = [];
  if (run.filter) rows.push(['Selection', describeFilter(run.filter)]);
  rows.push(['Requested by', run.requester.name || run.requester.aadObjectId], ['Run', run.runId]);
  return [title(actionLabel(run.kind)), facts(rows)];
}

export function planningCard(run: Run): AdaptiveCardJson {
  return card([...header(run), text('Planning… the on-premises agent is counting the matching mailboxes in CRM.', { subtle: true })]);
}

/** The plan could not be made (the agent failed it, or no agent answered): what happened and what to do. */
export function planFailedCard(run: Run): AdaptiveCardJson {
  const e = run.error;
  const body: CardElement[] = [...header(run), text(`The plan could not be made${e ? `: ${e.message}` : '.'}`, { color: 'Attention', weight: 'Bolder' })];
  if (e?.hint) body.push(text(`What to do: ${e.hint}`));
  body.push(text('Nothing was changed.', { subtle: true }));
  return card(body);
}

function planBody(run: Run, plan: PlanResult): CardElement[] {
  const body: CardElement[] = [
    ...header(run),
    facts([
      ['Mailboxes matching', plan.matched],
      ['Will change', plan.toChange],
      ['What changes', changeDescription(run.kind)],
    ]),
  ];
  if (plan.sample.length > 0) {
    body.push(text(`Sample (${plan.sample.length} of ${plan.matched})`, { weight: 'Bolder' }), bullets(plan.sample));
  }
  return body;
}

/** The plan with buttons: Approve / Reject for approvals, Confirm / Cancel for tests. */
export function planCard(run: Run, plan: PlanResult): AdaptiveCardJson {
  const body = planBody(run, plan);
  if (plan.toChange === 0) {
    body.push(text('Nothing to change: no mailbox matches that would be changed.', { color: 'Good' }));
    return card(body);
  }
  // The job carries plan.toChange as plannedCount; the agent refuses a selection grown well beyond it.
  const noun = plan.toChange === 1 ? 'mailbox' : 'mailboxes';
  body.push(text(`This ${kindOf(run).confirms ? 'confirmation' : 'approval'} covers about ${plan.toChange.toLocaleString('en-US')} ${noun}. The agent stops if the selection has grown beyond this plan.`));
  const who = !kindOf(run).confirms
    ? 'Only an approver (SETUP_APPROVERS) can approve.'
    : 'The requester or an approver (SETUP_APPROVERS) can confirm.';
  const expires = run.expiresAt ? ` This plan expires at ${run.expiresAt.replace('T', ' ').slice(0, 16)} UTC.` : '';
  body.push(text(`${who}${expires}`, { subtle: true }));
  const actions = !kindOf(run).confirms
    ? [executeAction('Approve', verbs.approve, run.runId, 'positive'), executeAction('Reject', verbs.reject, run.runId, 'destructive')]
    : [executeAction('Confirm', verbs.approve, run.runId, 'positive'), executeAction('Cancel', verbs.reject, run.runId, 'destructive')];
  return card(body, actions);
}

/** The plan card after the decision: no buttons, says who decided. */
export function decidedCard(run: Run): AdaptiveCardJson {
  const body = run.plan?.type === 'plan' ? planBody(run, run.plan) : header(run);
  const d = run.approval;
  const by = d?.decidedBy ? (d.decidedBy.name || d.decidedBy.aadObjectId) : '';
  const at = d ? d.decidedAt.replace('T', ' ').slice(0, 16) : '';
  if (run.state === 'expired' || d?.decision === 'expired') {
    body.push(text(`Expired: the approval window ended${run.expiresAt ? ` at ${run.expiresAt.replace('T', ' ').slice(0, 16)} UTC` : ''}. Nothing was run; ask again to get a fresh plan.`, { color: 'Warning', weight: 'Bolder' }));
  } else if (d?.decision === 'rejected') {
    body.push(text(`${kindOf(run).confirms ? 'Cancelled' : 'Rejected'} by ${by} at ${at} UTC. Nothing was run.`, { color: 'Attention', weight: 'Bolder' }));
  } else if (d?.decision === 'approved') {
    body.push(text(`${kindOf(run).confirms ? 'Confirmed' : 'Approved'} by ${by} at ${at} UTC: queued for the on-premises agent.`, { color: 'Good', weight: 'Bolder' }));
  }
  return card(body);
}
