import type { ApproveResult, FailureGroup, Progress, TestResult } from '../../../jobs/job-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { bullets, card, clip, container, executeAction, facts, text, title, verbs, type AdaptiveCardJson, type CardElement } from '../common/card-kit.ts';
import { actionLabel } from './plan-cards.ts';
import { kindOf } from '../../runs/run-kinds.ts';

const phaseLabels: Record<Progress['phase'], string> = {
  reading: 'Reading the selection from CRM',
  approving: 'Approving mailboxes',
  scheduling: 'Scheduling Test & Enable',
  waiting: 'Waiting for Test & Enable results',
  collecting: 'Collecting failure details',
  step: 'Working through the steps',
};

function who(run: Run): string {
  const d = run.approval?.decidedBy;
  return d ? (d.name || d.aadObjectId) : '';
}

function runFacts(run: Run): CardElement {
  const rows: [string, string][] = [['Run', run.runId], ['Requested by', run.requester.name || run.requester.aadObjectId]];
  const approver = who(run);
  if (approver) rows.push([kindOf(run).confirms ? 'Confirmed by' : 'Approved by', approver]);
  return facts(rows);
}

/** The one card of a run, updated in place: queued, progress, then the final state. */
export function runCard(run: Run): AdaptiveCardJson {
  const body: CardElement[] = [title(actionLabel(run.kind)), runFacts(run)];
  switch (run.state) {
    case 'approved':
      body.push(text('Queued: waiting for the on-premises agent to start.', { subtle: true }));
      break;
    case 'running': {
      const p = run.progress;
      if (!p) {
        body.push(text('Started.', { subtle: true }));
        break;
      }
      const pct = p.total > 0 ? Math.floor((p.done / p.total) * 100) : 0;
      const rows: [string, string | number][] = [['Phase', phaseLabels[p.phase]], ['Done', `${p.done} of ${p.total} (${pct}%)`]];
      for (const [k, v] of Object.entries(p.counts ?? {}).slice(0, 10)) rows.push([k, v]);
      body.push(facts(rows));
      break;
    }
    case 'succeeded':
      body.push(text(finalSummary(run), { color: 'Good', weight: 'Bolder' }));
      break;
    case 'failed':
      body.push(...errorBlock(run));
      break;
    default:
      body.push(text(`State: ${run.state}`, { subtle: true }));
  }
  return card(body);
}

function finalSummary(run: Run): string {
  const r = run.result;
  if (r?.type === 'approve') return `Finished: ${r.approved} approved, ${r.alreadyApproved} already approved, ${r.failed} failed. Details below.`;
  if (r?.type === 'test') return `Finished: ${r.succeeded} succeeded, ${r.failed} failed, ${r.noResult} without a result. Details below.`;
  return 'Finished.';
}

function errorBlock(run: Run): CardElement[] {
  const e = run.error;
  if (!e) return [text('Failed.', { color: 'Attention', weight: 'Bolder' })];
  const items: CardElement[] = [text(`Failed (${e.code}): ${e.message}`, { color: 'Attention', weight: 'Bolder' })];
  if (e.hint) items.push(text(`What to do: ${e.hint}`));
  return items;
}

function failureGroups(groups: readonly FailureGroup[]): CardElement[] {
  if (groups.length === 0) return [];
  const out: CardElement[] = [text('Failures by cause', { weight: 'Bolder' })];
  for (const g of groups.slice(0, 10)) {
    const items: CardElement[] = [
      text(`${g.title} (${g.count})`, { weight: 'Bolder', color: 'Attention' }),
      text(`What to do: ${g.remediation}`),
    ];
    if (g.sample.length > 0) items.push(text(`For example: ${g.sample.slice(0, 5).join(', ')}`, { subtle: true }));
    if (g.example) items.push(text(`CRM said: ${clip(g.example, 300)}`, { subtle: true }));
    out.push(container(items, 'emphasis'));
  }
  if (groups.length > 10) out.push(bullets([`${groups.length - 10} more causes: see the agent's log.`]));
  return out;
}

/** The results card posted in the thread at the end of a run. */
export function resultsCard(run: Run, result: ApproveResult | TestResult): AdaptiveCardJson {
  const seconds = Math.round(result.durationMs / 1000);
  const body: CardElement[] = [title(`Results: ${actionLabel(run.kind).toLowerCase()} (run ${run.runId})`, result.failed > 0 ? 'Warning' : 'Good')];
  if (result.type === 'approve') {
    body.push(facts([
      ['Matched', result.matched],
      ['Approved', result.approved],
      ['Already approved', result.alreadyApproved],
      ['Failed', result.failed],
      ['CRM requests', result.crmRequests],
      ['Duration', `${seconds} s`],
    ]));
  } else {
    body.push(facts([
      ['Selected', result.selected],
      ['Succeeded', result.succeeded],
      ['Failed', result.failed],
      ['No result (timed out)', result.noResult],
      ['CRM requests', result.crmRequests],
      ['Duration', `${seconds} s`],
    ]));
  }
  body.push(...failureGroups(result.failures));
  // ACT tied to another organization: the fix is Test & Enable "from this organization only" (a plan an approver confirms).
  const otherOrg = result.type === 'test' ? result.failures.find((g) => g.cause === 'another-organization') : undefined;
  if (otherOrg) {
    body.push(text(`${otherOrg.count} mailbox${otherOrg.count === 1 ? '' : 'es'} sync appointments, contacts and tasks with another organization: Sync from this org only marks them (orgmarkedasprimaryforexchangesync) and tests them again, once an approver confirms the plan.`, { subtle: true }));
    return card(body, [executeAction('Sync from this org only, then test', verbs.primaryOrg, run.runId)]);
  }
  return card(body);
}
