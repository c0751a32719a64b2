import { describeFilter } from '../../../jobs/mailbox-filter.ts';
import { stepTitles, type StepState } from '../../../jobs/cert-types.ts';
import {
  checklistQuestions,
  preflightTitles,
  type ChecklistItemId,
  type PreflightCheck,
  type ProfileValues,
  type RunbookStepPlan,
  type SetupPlanResult,
} from '../../../jobs/runbook-types.ts';
import { kindOf, runKinds } from '../../runs/run-kinds.ts';
import type { Run } from '../../runs/run-model.ts';
import { bullets, clip, container, facts, text, title, type CardElement } from '../common/card-kit.ts';
import { minute, personName } from '../cert/cert-card-parts.ts';

/**
 * Pieces the runbook cards share (docs/runbook.md): the heading of each scope, the step list, the
 * preflight checks, the profile values, who asked and who decided.
 */

export function runbookHeading(kind: Run['kind']): string {
  return runKinds[kind].family === 'runbook' ? runKinds[kind].heading : 'Set-up run';
}

/** Run id, requester, selection and (when decided) approver, checklist, resume. */
export function setupRunFacts(run: Run): CardElement {
  const rows: [string, string][] = [['Run', run.runId], ['Requested by', personName(run.requester)]];
  if (run.filter && kindOf(run).hasMailboxSteps) rows.push(['Mailboxes', describeFilter(run.filter)]);
  if (run.dryRun) rows.push(['Mode', 'dry run: nothing is changed']);
  if (run.approval?.decision === 'approved' && run.approval.decidedBy) rows.push(['Approved by', personName(run.approval.decidedBy)]);
  if (run.checklist) rows.push(['Checklist confirmed by', personName(run.checklist.confirmedBy)]);
  if (run.resumedBy) rows.push(['Resumed by', personName(run.resumedBy)]);
  if (run.attempt > 1) rows.push(['Attempt', String(run.attempt)]);
  return facts(rows);
}

export function head(run: Run): CardElement[] {
  return [title(runbookHeading(run.kind)), setupRunFacts(run)];
}

const runMarks: Record<StepState['state'], string> = {
  done: '✓',
  running: '▶',
  pending: '○',
  skipped: '⤼',
  failed: '✗',
};

const runWords: Record<StepState['state'], string> = {
  done: 'done',
  running: 'running',
  pending: 'pending',
  skipped: 'skipped',
  failed: 'FAILED',
};

/** The run card's step list: ✓ done, ▶ running (with what it is doing), ○ pending, ⤼ skipped, ✗ failed. */
export function runStepLines(steps: readonly StepState[]): CardElement {
  return text(steps.map((s) => `${runMarks[s.state]} ${stepTitles[s.id]}: ${runWords[s.state]}${s.detail ? `. ${clip(s.detail, 200)}` : ''}`).join('\n\n'));
}

/** What the plan says per step: "already done", "would …", or skipped (and why). */
export function planStepText(s: RunbookStepPlan): string {
  switch (s.state) {
    case 'done':
      return `already done${s.detail ? ` (${clip(s.detail, 200)})` : ''}`;
    case 'skipped':
      return `skipped${s.detail ? `: ${clip(s.detail, 200)}` : ''}`;
    case 'pending':
      return s.detail ? clip(s.detail, 250) : 'would change';
  }
}

const planMarks: Record<RunbookStepPlan['state'], string> = { done: '✓', pending: '○', skipped: '⤼' };

export function planStepLines(steps: readonly RunbookStepPlan[]): CardElement {
  return text(steps.map((s) => `${planMarks[s.state]} ${stepTitles[s.id]}: ${planStepText(s)}`).join('\n\n'));
}

const checkMarks: Record<PreflightCheck['status'], string> = { ok: '✓', warning: '⚠', failed: '✗' };

/** Each preflight check ✓ / ⚠ / ✗ with what was found and, when not ok, what to do. */
export function preflightLines(checks: readonly PreflightCheck[]): CardElement[] {
  const out: CardElement[] = [];
  for (const c of checks) {
    const items: CardElement[] = [text(`${checkMarks[c.status]} ${preflightTitles[c.id]}`, { weight: 'Bolder', ...(c.status === 'failed' ? { color: 'Attention' } : c.status === 'warning' ? { color: 'Warning' } : {}) })];
    if (c.detail) items.push(text(clip(c.detail, 400), { subtle: true }));
    if (c.fix && c.status !== 'ok') items.push(text(`What to do: ${clip(c.fix, 600)}`));
    out.push(c.status === 'ok' ? container(items) : container(items, c.status === 'failed' ? 'attention' : 'warning'));
  }
  return out;
}

/** The two checklist questions as reminders (the preflight card; the plan card asks them as toggles). */
export function checklistReminders(): CardElement[] {
  return [
    text('Checklist (no machine can check these: the requester confirms them on the `run setup` plan card)', { weight: 'Bolder' }),
    bullets((Object.keys(checklistQuestions) as ChecklistItemId[]).map((id) => `? ${checklistQuestions[id]}`)),
  ];
}

export function profileFacts(p: ProfileValues): CardElement {
  const locations = p.autodiscover ? 'autodiscover' : `incoming ${p.incomingUrl ?? 'not set'}, outgoing ${p.outgoingUrl ?? 'not set'}`;
  return facts([
    ['Name', p.name],
    ['Description', p.description || '(none)'],
    ['Owner', p.owner],
    ['Tenant ID', p.useDefaultTenantId ? 'the organization\'s default (S2STenantId)' : (p.tenantId ?? 'not set')],
    ['Server location', locations],
    ['Process email from', p.processEmailsReceivedAfter ? minute(p.processEmailsReceivedAfter) : 'when the profile is created'],
    ['Minimum polling interval', `${p.minPollingIntervalMinutes} minutes`],
    ['Move failed email to Undeliverable', p.moveUndeliveredEmails ? 'yes' : 'no'],
  ]);
}

/** The plan's values: tenant, certificate, mailboxes, profile. */
export function planValueBlocks(run: Run, plan: SetupPlanResult): CardElement[] {
  const rows: [string, string | number][] = [];
  if (plan.tenantId !== null || kindOf(run).showsTenant) rows.push(['Exchange Online tenant ID', plan.tenantId ?? 'not read']);
  if (plan.certThumbprint !== null || kindOf(run).showsCertificate) rows.push(['S2S certificate', plan.certThumbprint ?? 'none']);
  if (kindOf(run).hasMailboxSteps) rows.push(['Mailboxes selected', plan.mailboxes]);
  const out: CardElement[] = [];
  if (rows.length > 0) out.push(facts(rows));
  if (plan.profile) out.push(text('Email server profile', { weight: 'Bolder' }), profileFacts(plan.profile));
  return out;
}

/** Every blocker of a plan with its fix. */
export function blockerLines(plan: SetupPlanResult): CardElement[] {
  return plan.blockers.slice(0, 10).map((b) => container([text(clip(b.message, 400), { color: 'Attention', weight: 'Bolder' }), text(`What to do: ${clip(b.fix, 600)}`)], 'attention'));
}

/** The first step not done (what a cancelled run stopped before). */
export function nextStep(steps: readonly StepState[] | undefined): StepState | undefined {
  return steps?.find((s) => s.state === 'pending' || s.state === 'running' || s.state === 'failed');
}
