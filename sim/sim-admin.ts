import { z } from 'zod';
import { approvalLabels, testStatusLabels } from '../jobs/crm-values.ts';
import type { SimState } from './sim-state.ts';
import type { TestEnableEngine } from './test-enable-engine.ts';

/**
 * The simulator's own admin surface under `/_sim/` (outside the organization path, never delayed
 * or failed): state summary, fault injection, reset.
 */
export interface Faults {
  /** Added to every API request. */
  latencyMs: number;
  /** 0..1: probability that an API request answers 503 (seeded). */
  failRate: number;
  /** How long after scheduling a Test & Enable run completes (plus small jitter). */
  testDelayMs: number;
  /** The next n API requests answer 503. */
  failNext: number;
}

export const faultsSchema = z
  .object({
    latencyMs: z.number().int().min(0).max(600_000),
    failRate: z.number().min(0).max(1),
    testDelayMs: z.number().int().min(0).max(86_400_000),
    failNext: z.number().int().min(0).max(1_000_000),
  })
  .partial()
  .strict();

export interface StateSummary {
  mailboxes: number;
  active: number;
  inactive: number;
  byApproval: Record<string, number>;
  byTestStatus: { incoming: Record<string, number>; outgoing: Record<string, number>; act: Record<string, number>; mailbox: Record<string, number> };
  testsScheduled: number;
  testsPending: number;
  profiles: number;
  tracelogs: number;
}

function bump(counts: Record<string, number>, label: string): void {
  counts[label] = (counts[label] ?? 0) + 1;
}

export function summarizeState(state: SimState, engine: TestEnableEngine): StateSummary {
  const summary: StateSummary = {
    mailboxes: state.mailboxes.size,
    active: 0,
    inactive: 0,
    byApproval: {},
    byTestStatus: { incoming: {}, outgoing: {}, act: {}, mailbox: {} },
    testsScheduled: 0,
    testsPending: engine.pendingCount,
    profiles: state.profiles.size,
    tracelogs: state.tracelogs.size,
  };
  const label = (value: number): string => testStatusLabels[value] ?? String(value);
  for (const m of state.mailboxes.values()) {
    if (m.statecode === 0) summary.active++;
    else summary.inactive++;
    bump(summary.byApproval, approvalLabels[m.emailrouteraccessapproval] ?? String(m.emailrouteraccessapproval));
    bump(summary.byTestStatus.incoming, label(m.incomingemailstatus));
    bump(summary.byTestStatus.outgoing, label(m.outgoingemailstatus));
    bump(summary.byTestStatus.act, label(m.actstatus));
    bump(summary.byTestStatus.mailbox, label(m.mailboxstatus));
    if (m.testemailconfigurationscheduled) summary.testsScheduled++;
  }
  return summary;
}
