import type { CertPlanResult } from '../../../jobs/cert-types.ts';
import type { Run } from '../../runs/run-model.ts';
import { stepTitles } from '../../../jobs/cert-types.ts';
import { card, clip, container, executeAction, facts, text, title, verbs, type AdaptiveCardJson, type CardElement } from '../common/card-kit.ts';
import { certFacts, minute, personName, previewLines, problemBlock, runFacts } from './cert-card-parts.ts';

/**
 * The rotation plan (`cert rotate [file]`): "Planning…", then the plan with Approve / Reject (two
 * people: the approver is not the requester), "cannot rotate" for a blocked plan, or what went wrong.
 */
function head(run: Run): CardElement[] {
  return [title('Rotate the S2S certificate'), runFacts(run)];
}

function fileText(run: Run): string {
  return run.certFile ? `\`${run.certFile}\`` : 'the default PFX (the agent\'s CERT_NEW_PFX)';
}

export function certPlanningCard(run: Run): AdaptiveCardJson {
  return card([...head(run), text(`Planning… the on-premises agent is reading ${fileText(run)} from its CERT_DIR and checking the servers, CRM and Entra ID. Nothing is changed yet.`, { subtle: true })]);
}

function planBody(run: Run, plan: CertPlanResult): CardElement[] {
  const body: CardElement[] = [...head(run), text(`Old certificate${plan.current ? '' : ': none registered'}`, { weight: 'Bolder' })];
  if (plan.current) body.push(certFacts(plan.current));
  body.push(text(`New certificate (from \`${plan.file}\`)`, { weight: 'Bolder' }), certFacts(plan.next));
  body.push(...problemBlock(plan.next, 'About the new certificate'));
  body.push(
    text('Where', { weight: 'Bolder' }),
    facts([
      ['Async servers', plan.servers.join(', ') || 'none configured'],
      ['Service account', plan.serviceAccount || 'not configured'],
      ['Cloud', plan.cloud],
      ['Metadata URL', plan.metadataUrl],
      ['Verification', plan.verification.mode === 'all' ? `Test & Enable every active approved mailbox (${plan.verification.mailboxes})` : `Test & Enable ${plan.verification.mailboxes} recently working mailboxes`],
      ['Old key credential', plan.retireOld === 'remove' ? 'removed from Entra ID once verification passed' : 'kept until it expires'],
    ]),
    text('Steps', { weight: 'Bolder' }),
    previewLines(plan.steps),
  );
  return body;
}

/** The plan awaiting a decision (buttons), or as decided (no buttons, who decided). */
export function certPlanCard(run: Run, plan: CertPlanResult): AdaptiveCardJson {
  const body = planBody(run, plan);
  if (run.state !== 'awaiting-approval') {
    body.push(...decisionLines(run, 'rotation'));
    return card(body);
  }
  const expires = run.expiresAt ? ` This plan expires at ${minute(run.expiresAt)} UTC.` : '';
  body.push(text(`Needs an approver other than ${personName(run.requester)} (SETUP_APPROVERS; two-person rule).${expires}`, { weight: 'Bolder' }));
  body.push(text('What is approved is this certificate: the agent refuses to go on if the file now holds another one.', { subtle: true }));
  return card(body, [executeAction('Approve', verbs.approve, run.runId, 'positive'), executeAction('Reject', verbs.reject, run.runId, 'destructive')]);
}

/**
 * A blocked plan: every reason, each with what to do: the new certificate's error-severity problems
 * (with their fixes) and every step whose preview says why it cannot go on (a server that could not
 * be read, a same-subject certificate in a store). Nothing was changed.
 */
export function certPlanBlockedCard(run: Run, plan: CertPlanResult): AdaptiveCardJson {
  const certErrors = plan.next.problems.some((p) => p.severity === 'error');
  // The validate step repeats the certificate's problems, which are shown with their fixes already.
  const blockedSteps = plan.steps.filter((s) => s.state === 'failed' && !(certErrors && s.id === 'validate'));
  const reasons: string[] = [];
  if (certErrors) reasons.push(`the new certificate in \`${plan.file}\` does not meet the requirements`);
  if (blockedSteps.length > 0) reasons.push(blockedSteps.length === 1 ? 'a step cannot go on' : `${blockedSteps.length} steps cannot go on`);
  const why = reasons.length > 0 ? reasons.join(', and ') : 'the agent reported the plan as blocked';
  const body: CardElement[] = [...head(run), text(`Cannot rotate: ${why}.`, { color: 'Attention', weight: 'Bolder' })];
  body.push(certFacts(plan.next), ...problemBlock(plan.next, 'Problems with the certificate, each with what to do'));
  if (blockedSteps.length > 0) {
    body.push(text('Steps that cannot go on', { weight: 'Bolder' }));
    for (const s of blockedSteps) {
      body.push(container([
        text(stepTitles[s.id], { color: 'Attention', weight: 'Bolder' }),
        text(s.detail ? clip(s.detail, 300) : 'The agent gave no detail: see its log.'),
      ], 'attention'));
    }
  }
  const fix = certErrors && blockedSteps.length > 0
    ? 'Fix each of these (the certificate, then the servers), then `cert rotate` again.'
    : certErrors
      ? 'Fix the certificate, put it in the agent\'s CERT_DIR, then `cert rotate` again.'
      : 'Fix what each step says (two certificates with the same subject in a server\'s LocalMachine\\My break the import: "private key not found"), then `cert rotate` again.';
  body.push(text(`Nothing was changed. ${fix}`, { subtle: true }));
  return card(body);
}

/** The plan could not be made (the agent failed it, or no agent answered). */
export function certPlanFailedCard(run: Run): AdaptiveCardJson {
  const e = run.error;
  const body: CardElement[] = [...head(run), text(`The rotation could not be planned${e ? `: ${e.message}` : '.'}`, { color: 'Attention', weight: 'Bolder' })];
  if (e?.hint) body.push(text(`What to do: ${e.hint}`));
  body.push(text('Nothing was changed.', { subtle: true }));
  return card(body);
}

/** "Approved by X at …: queued", "Rejected by X", "Withdrawn by X", "Expired". */
export function decisionLines(run: Run, what: 'rotation' | 'rollback'): CardElement[] {
  const d = run.approval;
  const by = personName(d?.decidedBy);
  const at = d ? minute(d.decidedAt) : '';
  if (run.state === 'expired' || d?.decision === 'expired') {
    return [text(`Expired: the approval window ended${run.expiresAt ? ` at ${minute(run.expiresAt)} UTC` : ''}. Nothing was run; ask again to get a fresh plan.`, { color: 'Warning', weight: 'Bolder' })];
  }
  if (d?.decision === 'rejected') {
    const withdrawn = d.decidedBy?.aadObjectId === run.requester.aadObjectId;
    return [text(`${withdrawn ? 'Withdrawn' : 'Rejected'} by ${by} at ${at} UTC. Nothing was run.`, { color: 'Attention', weight: 'Bolder' })];
  }
  if (d?.decision === 'approved') {
    return [text(`Approved by ${by} at ${at} UTC: the ${what} is queued for the on-premises agent.`, { color: 'Good', weight: 'Bolder' })];
  }
  return [];
}
