import type { FailureGroup } from '../../../jobs/job-types.ts';
import { classifyFailure, type KnownError } from '../../runtime/known-errors.ts';

const MAX_GROUPS = 20;
const MAX_SAMPLE = 10;
const MAX_EXAMPLE = 400;

/** Collects per-mailbox failures into groups by cause, as the results card shows them. */
export class FailureGroups {
  readonly #groups = new Map<string, FailureGroup>();

  /** Records one failed mailbox with the text that explains it (trace text or CRM error message). */
  add(address: string, text: string, known: KnownError = classifyFailure(text)): void {
    // Unknown causes are grouped by their text, so different unknown problems stay apart.
    const key = known.cause === 'unknown' ? `unknown:${normalise(text)}` : known.cause;
    let group = this.#groups.get(key);
    if (!group) {
      if (this.#groups.size >= MAX_GROUPS - 1 && key !== 'overflow') {
        this.#addOverflow(address, text);
        return;
      }
      group = { cause: known.cause, title: known.title, remediation: known.remediation, count: 0, sample: [] };
      if (known.cause === 'unknown') group.example = shorten(text);
      this.#groups.set(key, group);
    }
    group.count += 1;
    if (group.sample.length < MAX_SAMPLE) group.sample.push(address.slice(0, 320));
  }

  #addOverflow(address: string, text: string): void {
    let group = this.#groups.get('overflow');
    if (!group) {
      group = { cause: 'unknown', title: 'Other causes', remediation: "Read the mailboxes' alerts in CRM.", count: 0, sample: [], example: shorten(text) };
      this.#groups.set('overflow', group);
    }
    group.count += 1;
    if (group.sample.length < MAX_SAMPLE) group.sample.push(address.slice(0, 320));
  }

  get total(): number {
    let n = 0;
    for (const g of this.#groups.values()) n += g.count;
    return n;
  }

  /** Largest groups first. */
  toArray(): FailureGroup[] {
    return [...this.#groups.values()].sort((a, b) => b.count - a.count).map((g) => ({ ...g, sample: [...g.sample] }));
  }
}

function shorten(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > MAX_EXAMPLE ? `${t.slice(0, MAX_EXAMPLE - 1)}…` : t;
}

/** Removes ids and addresses so the same unknown message about different mailboxes groups together. */
function normalise(text: string): string {
  return text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<id>')
    .replace(/[^\s@]+@[^\s@]+/g, '<address>')
    .replace(/\d+/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}
