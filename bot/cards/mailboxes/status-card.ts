import type { StatusResult } from '../../../jobs/job-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { card, facts, text, title, type AdaptiveCardJson, type CardElement } from '../common/card-kit.ts';
import { ewsSection } from '../runbook/ews-card-parts.ts';

export interface AgentSeen {
  /** Seconds since the agent's last heartbeat, or undefined when no agent has reported. */
  lastSeenSeconds: number | undefined;
}

export function agentLine(seen: AgentSeen): string {
  return seen.lastSeenSeconds === undefined
    ? 'Agent: no agent has reported for this deployment.'
    : `Agent: last seen ${seen.lastSeenSeconds} s ago.`;
}

function head(deployment: string, seen: AgentSeen): CardElement[] {
  return [title(`Status of deployment "${deployment}"`), text(agentLine(seen), { color: seen.lastSeenSeconds === undefined ? 'Warning' : 'Default' })];
}

export function statusCheckingCard(run: Run, seen: AgentSeen): AdaptiveCardJson {
  return card([...head(run.deployment, seen), text('Checking… asking the agent for mailbox counts.', { subtle: true })]);
}

export function statusCard(run: Run, seen: AgentSeen, result: StatusResult): AdaptiveCardJson {
  return card([
    ...head(run.deployment, seen),
    text(`Mailboxes: ${result.total} (CRM user ${result.crmUser})`, { weight: 'Bolder' }),
    text('By approval status', { weight: 'Bolder' }),
    facts([
      ['Approved', result.approval.approved],
      ['Pending Approval', result.approval.pending],
      ['Empty', result.approval.empty],
      ['Rejected', result.approval.rejected],
    ]),
    text('By last Test & Enable', { weight: 'Bolder' }),
    facts([
      ['Success', result.test.success],
      ['Failure', result.test.failure],
      ['Not run', result.test.notRun],
    ]),
    // Whether any of this can sync: Exchange Online's EWS policy (an older agent does not report it).
    ...(result.ews ? ewsSection(result.ews) : [text('EWS access in Exchange Online: not reported by this agent (upgrade the agent to check it).', { color: 'Warning' })]),
  ]);
}

export function statusFailedCard(run: Run, seen: AgentSeen): AdaptiveCardJson {
  const e = run.error;
  const body = [...head(run.deployment, seen), text(`Could not get the mailbox counts${e ? `: ${e.message}` : '.'}`, { color: 'Attention' })];
  if (e?.hint) body.push(text(`What to do: ${e.hint}`));
  return card(body);
}
