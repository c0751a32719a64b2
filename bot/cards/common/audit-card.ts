import type { StoredAuditEntry } from '../../../core/audit-log.ts';
import { card, clip, container, text, title, type AdaptiveCardJson, type CardElement } from './card-kit.ts';

/** `audit [n]`: the latest entries of the deployment's audit log, newest first. */

function when(iso: string): string {
  return `${iso.replace('T', ' ').slice(0, 19)} UTC`;
}

function entryBlock(entry: StoredAuditEntry): CardElement {
  const run = entry.runId ? ` · run ${entry.runId}` : '';
  const refused = entry.kind === 'refusal' || /^refused\b/i.test(entry.outcome) || /^failed\b/i.test(entry.outcome);
  return container([
    text(`${when(entry.at)} · ${clip(entry.actor, 80)} · ${entry.kind}${run}`, { subtle: true }),
    text(`${clip(entry.what, 300)} → ${clip(entry.outcome, 300)}`, refused ? { color: 'Attention' } : {}),
  ]);
}

export function auditCard(entries: readonly StoredAuditEntry[], deployment: string): AdaptiveCardJson {
  if (entries.length === 0) {
    return card([title('Audit log'), text(`The audit log of the deployment ${clip(deployment, 64)} is empty.`)]);
  }
  return card([
    title('Audit log'),
    text(`The latest ${entries.length === 1 ? 'entry' : `${entries.length} entries`} of the deployment ${clip(deployment, 64)}, newest first. Export the whole log with \`npm run audit -- export\`.`, { subtle: true }),
    ...entries.map(entryBlock),
  ]);
}
