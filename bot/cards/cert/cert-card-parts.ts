import { stepTitles, type CertSummary, type StepState, type Verification } from '../../../jobs/cert-types.ts';
import type { Person, Run } from '../../runs/run-model.ts';
import { bullets, clip, container, facts, text, type CardElement } from '../common/card-kit.ts';

/**
 * Pieces the certificate cards share: a certificate's facts, the step list, the verification
 * counts and failures, who asked and who decided.
 */

/** "2031-05-01" from an ISO date. */
export function day(iso: string): string {
  return iso.slice(0, 10);
}

/** "2030-01-01 10:15" from an ISO date. */
export function minute(iso: string): string {
  return iso.replace('T', ' ').slice(0, 16);
}

export function personName(p: Person | undefined): string {
  if (!p) return '';
  return p.name || p.aadObjectId || 'someone';
}

export function keySpecText(keySpec: CertSummary['keySpec']): string {
  switch (keySpec) {
    case 1:
      return '1 (AT_KEYEXCHANGE)';
    case 2:
      return '2 (AT_SIGNATURE: CRM cannot use it)';
    case 0:
      return '0 (CNG: CRM cannot use it)';
    default:
      return 'unknown';
  }
}

/** The facts of one certificate: thumbprint, subject, validity, key. */
export function certFacts(c: CertSummary): CardElement {
  return facts([
    ['Thumbprint', c.thumbprint],
    ['Subject', c.subject],
    ['Issuer', c.selfSigned ? `${c.issuer} (self-signed)` : c.issuer],
    ['Valid', `${day(c.notBefore)} to ${day(c.notAfter)}`],
    ['Key', `${c.keyAlgorithm} ${c.keySize} bits, ${c.signatureHash}`],
    ['KeySpec', keySpecText(c.keySpec)],
  ]);
}

/** Each problem of a certificate with its fix; errors first. */
export function problemBlock(c: CertSummary, heading: string): CardElement[] {
  if (c.problems.length === 0) return [];
  const sorted = [...c.problems].sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
  const items: CardElement[] = [text(heading, { weight: 'Bolder' })];
  for (const p of sorted.slice(0, 8)) {
    items.push(container([
      text(`${p.severity === 'error' ? 'Problem' : 'Warning'}: ${p.message}`, { color: p.severity === 'error' ? 'Attention' : 'Warning', weight: 'Bolder' }),
      text(`What to do: ${p.fix}`),
    ], p.severity === 'error' ? 'attention' : 'warning'));
  }
  return items;
}

const stepMarks: Record<StepState['state'], string> = {
  pending: '○',
  running: '▶',
  done: '✔',
  skipped: '↷',
  failed: '✖',
};

const stepWords: Record<StepState['state'], string> = {
  pending: 'pending',
  running: 'running',
  done: 'done',
  skipped: 'skipped',
  failed: 'FAILED',
};

/** One line per step: mark, title, state and what it did or found. */
export function stepLines(steps: readonly StepState[]): CardElement {
  return text(steps.map((s) => `${stepMarks[s.state]} ${stepTitles[s.id]}: ${stepWords[s.state]}${s.detail ? `. ${clip(s.detail, 200)}` : ''}`).join('\n\n'));
}

/** The steps of a run not started yet (plan cards): title and preview detail. */
export function previewLines(steps: readonly StepState[]): CardElement {
  return bullets(steps.map((s) => `${stepTitles[s.id]}${s.detail ? `: ${s.detail}` : s.state === 'skipped' || s.state === 'done' ? ': already done' : ''}`), 12);
}

/** The failed step (if any) of a list of step states. */
export function failedStep(steps: readonly StepState[] | undefined): StepState | undefined {
  return steps?.find((s) => s.state === 'failed');
}

/** Verification (Test & Enable) counts and the failures grouped by cause, each with what to do. */
export function verificationBlock(v: Verification | null): CardElement[] {
  if (!v) return [];
  const out: CardElement[] = [
    text('Verification (Test & Enable)', { weight: 'Bolder' }),
    facts([
      ['Mailboxes tested', v.selected],
      ['Succeeded', v.succeeded],
      ['Failed', v.failed],
      ['No result (timed out)', v.noResult],
    ]),
  ];
  for (const g of v.failures.slice(0, 6)) {
    const items: CardElement[] = [text(`${g.title} (${g.count})`, { weight: 'Bolder', color: 'Attention' }), text(`What to do: ${g.remediation}`)];
    if (g.sample.length > 0) items.push(text(`For example: ${g.sample.slice(0, 5).join(', ')}`, { subtle: true }));
    if (g.example) items.push(text(`CRM said: ${clip(g.example, 300)}`, { subtle: true }));
    out.push(container(items, 'emphasis'));
  }
  if (v.failures.length > 6) out.push(bullets([`${v.failures.length - 6} more causes: see the agent's log.`]));
  return out;
}

/** Run id, requester and (when decided) the approver. */
export function runFacts(run: Run): CardElement {
  const rows: [string, string][] = [['Run', run.runId], ['Requested by', personName(run.requester)]];
  if (run.approval?.decision === 'approved' && run.approval.decidedBy) rows.push(['Approved by', personName(run.approval.decidedBy)]);
  if (run.resumedBy) rows.push(['Resumed by', personName(run.resumedBy)]);
  if (run.attempt > 1) rows.push(['Attempt', String(run.attempt)]);
  if (run.parentRunId) rows.push(['Rolls back run', run.parentRunId]);
  return facts(rows);
}
