import type { Logger } from '../core/logger.ts';
import { ewsRefusal } from './exchange-online.ts';
import { s2sHealth, type S2SState } from './s2s-state.ts';
import type { SeededRandom } from './seeded-random.ts';
import type { SimState } from './sim-state.ts';
import { applyTestOutcome, evaluateTestOutcome, type TestCause } from './test-outcome.ts';

/**
 * CRM's asynchronous Test & Enable, simulated: scheduling a mailbox queues a run that completes
 * `delayMs` (plus a little seeded jitter) later and writes its outcome into the mailbox and, on
 * failure, a trace record. One min-heap and one timer serve every mailbox (5,000 scheduled at once
 * cost one timer, not 5,000). Scheduling a mailbox that is already pending does nothing.
 */
export interface TestEnableEngineOptions {
  getState: () => SimState;
  random: SeededRandom;
  delayMs: number;
  logger: Logger;
  newId: () => string;
  now?: () => number;
  /** The simulated S2S side: when `s2sHealth` is not ok, runs fail with its trace text. Absent: S2S is assumed healthy. */
  getS2S?: () => S2SState;
}

interface Entry {
  due: number;
  seq: number;
  mailboxId: string;
}

/** Largest jitter added to a run, and its share of the delay (small delays get small jitter). */
const MAX_JITTER_MS = 250;
const JITTER_SHARE = 0.1;

export class TestEnableEngine {
  private readonly heap: Entry[] = [];
  /** mailboxid → seq of its live heap entry; entries whose seq differs are stale (cancelled). */
  private readonly pending = new Map<string, number>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Number.POSITIVE_INFINITY;
  private readonly now: () => number;
  private delay: number;
  private stopped = false;
  /** Runs completed since start (or the last reset), by cause. */
  readonly completed = new Map<TestCause, number>();

  constructor(private readonly options: TestEnableEngineOptions) {
    this.now = options.now ?? Date.now;
    this.delay = options.delayMs;
  }

  get delayMs(): number {
    return this.delay;
  }

  set delayMs(value: number) {
    this.delay = Math.max(0, value);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  isPending(mailboxId: string): boolean {
    return this.pending.has(mailboxId);
  }

  /** Queues a run; false when one is already pending for this mailbox. */
  schedule(mailboxId: string): boolean {
    if (this.stopped || this.pending.has(mailboxId)) return false;
    const jitter = this.options.random.next() * Math.min(MAX_JITTER_MS, this.delay * JITTER_SHARE);
    const entry: Entry = { due: this.now() + this.delay + jitter, seq: ++this.seq, mailboxId };
    this.pending.set(mailboxId, entry.seq);
    this.push(entry);
    this.arm();
    return true;
  }

  /** Drops a pending run (the scheduled flag was cleared before it ran). */
  cancel(mailboxId: string): boolean {
    return this.pending.delete(mailboxId);
  }

  /** Completes every run that is due now; returns how many ran. */
  runDue(): number {
    const now = this.now();
    let ran = 0;
    for (let top = this.heap[0]; top && top.due <= now; top = this.heap[0]) {
      this.pop();
      if (this.pending.get(top.mailboxId) !== top.seq) continue;
      this.pending.delete(top.mailboxId);
      this.complete(top.mailboxId, now);
      ran++;
    }
    return ran;
  }

  /** Forgets every pending run (used when the simulator is reset). */
  reset(): void {
    this.heap.length = 0;
    this.pending.clear();
    this.completed.clear();
    this.clearTimer();
  }

  stop(): void {
    this.stopped = true;
    this.reset();
  }

  private complete(mailboxId: string, now: number): void {
    const state = this.options.getState();
    const mailbox = state.mailboxes.get(mailboxId);
    if (!mailbox) return;
    const s2s = this.options.getS2S?.();
    const outcome = s2s
      ? evaluateTestOutcome(state, mailbox, s2sHealth(s2s, now), {
        graphTenantId: s2s.tenant.id,
        organizationTenantId: s2s.organization.s2sTenantId,
        ewsRefusal: (address) => ewsRefusal(s2s.exchange, address),
      })
      : evaluateTestOutcome(state, mailbox);
    applyTestOutcome(state, mailbox, outcome, now, this.options.newId);
    this.completed.set(outcome.cause, (this.completed.get(outcome.cause) ?? 0) + 1);
    this.options.logger.debug({ mailboxId, cause: outcome.cause }, 'test and enable completed');
  }

  private arm(): void {
    const top = this.heap[0];
    if (!top) {
      this.clearTimer();
      return;
    }
    if (this.timer && this.timerDue <= top.due) return;
    this.clearTimer();
    this.timerDue = top.due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Number.POSITIVE_INFINITY;
      try {
        this.runDue();
      } catch (error) {
        this.options.logger.error({ err: error }, 'test and enable run failed');
      }
      this.arm();
    }, Math.max(0, top.due - this.now()));
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
  }

  private less(a: Entry, b: Entry): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent];
      if (!p || !this.less(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (!top || !last || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      let smallestEntry = last;
      const le = heap[l];
      const re = heap[r];
      if (le && this.less(le, smallestEntry)) {
        smallest = l;
        smallestEntry = le;
      }
      if (re && this.less(re, smallestEntry)) {
        smallest = r;
        smallestEntry = re;
      }
      if (smallest === i) break;
      heap[i] = smallestEntry;
      i = smallest;
    }
    heap[i] = last;
    return top;
  }
}
