import { stepTitles, type StepState } from '../../../jobs/cert-types.ts';
import { kindOf, runKinds } from '../../runs/run-kinds.ts';
import type { Run, RunState } from '../../runs/run-model.ts';
import { card, clip, container, text, title, type AdaptiveCardJson, type CardElement } from './card-kit.ts';
import { minute, personName } from '../cert/cert-card-parts.ts';

/** `jobs`: the deployment's latest runs, newest first, with what to do next for a halted one. */

const stateColors: Partial<Record<RunState, string>> = {
  succeeded: 'Good',
  failed: 'Attention',
  'plan-failed': 'Attention',
  halted: 'Warning',
  running: 'Accent',
};

export function kindLabel(run: Pick<Run, 'kind' | 'dryRun'>): string {
  const label = runKinds[run.kind].label;
  return run.dryRun && runKinds[run.kind].wholeRunbook ? `${label} --dry-run` : run.dryRun ? `${label} (show)` : label;
}

/** The step a running or halted runbook run is at: the failed one, else the running one, else the first pending. */
export function currentStep(steps: readonly StepState[] | undefined): StepState | undefined {
  if (!steps) return undefined;
  return steps.find((s) => s.state === 'failed') ?? steps.find((s) => s.state === 'running') ?? steps.find((s) => s.state === 'pending');
}

/** What a person can do about the run now, as the commands to type (only for a halted runbook run). */
export function nextAction(run: Run): string | undefined {
  if (!kindOf(run).runbook) return undefined;
  if (run.state === 'halted') return `After the fix: \`resume ${run.runId}\`, or \`cancel ${run.runId}\` to stop it.`;
  if (run.state === 'running' || run.state === 'approved' || run.state === 'awaiting-approval') return `To stop it: \`cancel ${run.runId}\`.`;
  return undefined;
}

function runBlock(run: Run): CardElement {
  const lines = [
    `**${run.runId}** · ${kindLabel(run)} · **${run.state}**`,
    `Asked by ${clip(personName(run.requester), 80)} · created ${minute(run.createdAt)} · updated ${minute(run.updatedAt)} (UTC)`,
  ];
  const items: CardElement[] = [text(lines[0] ?? '', stateColors[run.state] ? { color: stateColors[run.state] ?? 'Default' } : {}), text(lines[1] ?? '', { subtle: true })];
  if (kindOf(run).runbook && (run.state === 'running' || run.state === 'halted')) {
    const step = currentStep(run.steps);
    if (step) {
      const detail = step.detail ? `: ${clip(step.detail, 200)}` : '';
      items.push(text(`${run.state === 'halted' ? 'Stopped at' : 'At'} step: ${stepTitles[step.id]}${detail}`));
    }
  }
  const next = nextAction(run);
  if (next) items.push(text(next, { weight: 'Bolder' }));
  return container(items, run.state === 'halted' ? 'warning' : 'emphasis');
}

export function jobsCard(runs: readonly Run[], deployment: string, limit: number): AdaptiveCardJson {
  if (runs.length === 0) {
    return card([title('Jobs'), text(`No runs in the deployment ${clip(deployment, 64)} yet (runs are kept 30 days).`)]);
  }
  return card([
    title('Jobs'),
    text(`The latest ${runs.length === limit ? limit : runs.length} runs in the deployment ${clip(deployment, 64)}, newest first.`, { subtle: true }),
    ...runs.map(runBlock),
  ]);
}
