import type { PreflightResult } from '../../../jobs/runbook-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { card, text, type AdaptiveCardJson, type CardElement } from '../common/card-kit.ts';
import { ewsAllGood, ewsSection } from './ews-card-parts.ts';
import { checklistReminders, head, preflightLines } from './setup-card-parts.ts';

/**
 * `preflight` (read-only): "Checking…", then every check ✓ / ⚠ / ✗ with what was found and, when
 * not ok, what to do; the two checklist questions no machine can check are shown as reminders.
 */
export function preflightCheckingCard(run: Run): AdaptiveCardJson {
  return card([...head(run), text('Checking… the on-premises agent is checking CRM, its own rights, Microsoft Graph, the certificate and the async servers. Nothing is changed.', { subtle: true })]);
}

export function preflightCard(run: Run, result: PreflightResult): AdaptiveCardJson {
  const failed = result.checks.filter((c) => c.status === 'failed').length;
  const warnings = result.checks.filter((c) => c.status === 'warning').length;
  // Never green while Exchange Online refuses CRM's EWS calls (or cannot be asked).
  const ewsGood = result.ews ? ewsAllGood(result.ews) : true;
  const summary = result.ok
    ? ewsGood
      ? `Ready: every check passed${warnings > 0 ? ` (${warnings} warning${warnings === 1 ? '' : 's'})` : ''}.`
      : `Ready to set up, but mail will not sync until Exchange Online allows EWS for CRM (see below; \`run setup\` or \`ews allow\` fixes it).`
    : `Not ready: ${failed} check${failed === 1 ? '' : 's'} failed. Fix each as it says, then \`preflight\` again.`;
  const body: CardElement[] = [...head(run), text(summary, { color: result.ok ? (ewsGood ? 'Good' : 'Warning') : 'Attention', weight: 'Bolder' })];
  body.push(...preflightLines(result.checks));
  if (result.ews) body.push(...ewsSection(result.ews));
  body.push(...checklistReminders());
  body.push(text('Nothing was changed.', { subtle: true }));
  return card(body);
}

/** The checks could not be run (the agent failed, or no agent answered). */
export function preflightFailedCard(run: Run): AdaptiveCardJson {
  const e = run.error;
  const body: CardElement[] = [...head(run), text(`The checks could not be run${e ? `: ${e.message}` : '.'}`, { color: 'Attention', weight: 'Bolder' })];
  if (e?.hint) body.push(text(`What to do: ${e.hint}`));
  body.push(text('Nothing was changed.', { subtle: true }));
  return card(body);
}
