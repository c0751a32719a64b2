import { certStepTitles, rollbackStepIds } from '../../../jobs/cert-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { bullets, card, executeAction, facts, text, title, verbs, type AdaptiveCardJson, type CardElement } from '../common/card-kit.ts';
import { certFacts, minute, personName, runFacts } from './cert-card-parts.ts';
import { decisionLines } from './cert-plan-card.ts';

/**
 * The rollback plan, posted as a new message when someone clicks Roll back on a halted rotation:
 * the old certificate (still in every store and in Entra ID) becomes the S2S token issuer again.
 * Like the rotation it needs an approver other than the person who asked for it.
 */
function rollbackBody(run: Run): CardElement[] {
  const body: CardElement[] = [title('Roll back the S2S certificate'), runFacts(run)];
  const plan = run.plan?.type === 'cert-plan' ? run.plan : undefined;
  if (run.rollback) {
    body.push(facts([
      ['Make the issuer again', run.rollback.restoreThumbprint],
      ['Instead of', `${run.rollback.failedThumbprint} (its key credential is removed from Entra ID once the rollback's verification passes)`],
    ]));
  }
  if (plan?.current) body.push(text('The certificate restored', { weight: 'Bolder' }), certFacts(plan.current));
  body.push(text('Steps', { weight: 'Bolder' }), bullets(rollbackStepIds.map((id) => certStepTitles[id])));
  return body;
}

export function certRollbackCard(run: Run): AdaptiveCardJson {
  const body = rollbackBody(run);
  if (run.state !== 'awaiting-approval') {
    body.push(...decisionLines(run, 'rollback'));
    return card(body);
  }
  const expires = run.expiresAt ? ` This plan expires at ${minute(run.expiresAt)} UTC.` : '';
  body.push(text(`Needs an approver other than ${personName(run.requester)} (SETUP_APPROVERS; two-person rule).${expires}`, { weight: 'Bolder' }));
  return card(body, [executeAction('Approve', verbs.approve, run.runId, 'positive'), executeAction('Reject', verbs.reject, run.runId, 'destructive')]);
}
