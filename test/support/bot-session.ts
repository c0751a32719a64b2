import { afterEach } from 'vitest';
import type { RunStore } from '../../bot/runs/run-store.ts';
import { jobQueueName } from '../../jobs/deployment.ts';
import type { JobType, ReportEvent } from '../../jobs/job-types.ts';
import { clickCard, runStoreOf, sendMessage, startHarness, withQueue, type ClickResponse, type Harness, type HarnessOptions, type User } from './bot-harness.ts';
import { cardOf, type CapturedCall, type CardLike } from './fake-connector.ts';

/** One bot harness per test, with the conversation helpers the end-to-end bot tests share. */
export interface BotSession {
  /** Starts this test's harness (`defaults` unless given other options). */
  start: (options?: HarnessOptions) => Promise<Harness>;
  /** The running harness (throws when the test has not started one). */
  harness: () => Harness;
  say: (from: User, text: string) => Promise<CapturedCall>;
  click: (from: User, verb: string, runId: string, cardId: string) => Promise<ClickResponse>;
  runStore: () => RunStore;
  /** The newest version of a card (its last update, or the post itself). */
  latestCard: (cardId: string) => CardLike;
  /** Publishes a report as the agent and waits until the card has one more update. */
  reportAndWait: (cardId: string, runId: string, jobType: JobType, event: ReportEvent, attempt?: number) => Promise<CardLike>;
  /** The ids of every job in the deployment's job queue, sorted. */
  jobIds: () => Promise<string[]>;
}

/** Call at a test file's top level: registers an afterEach that closes the harness the test started. */
export function botSession(defaults: HarnessOptions = {}): BotSession {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const harness = (): Harness => {
    if (!h) throw new Error('no harness: call start() first');
    return h;
  };
  const latestCard = (cardId: string): CardLike => {
    const t = harness();
    const updates = t.connector.updates(cardId);
    return cardOf(updates.length > 0 ? updates.at(-1) : t.connector.posts().find((p) => p.activityId === cardId));
  };

  return {
    start: async (options = defaults) => {
      h = await startHarness(options);
      return h;
    },
    harness,
    say: (from, text) => sendMessage(harness(), from, text),
    click: (from, verb, runId, cardId) => clickCard(harness(), from, verb, runId, cardId),
    runStore: () => runStoreOf(harness()),
    latestCard,
    reportAndWait: async (cardId, runId, jobType, event, attempt = 1) => {
      const t = harness();
      const before = t.connector.updates(cardId).length;
      await t.agent.report(runId, jobType, event, attempt);
      await t.connector.waitFor(() => t.connector.updates(cardId).length > before, `a card update after ${event.kind}`);
      return latestCard(cardId);
    },
    jobIds: async () => {
      const t = harness();
      return withQueue(t, jobQueueName(t.config.deployment), async (q) => {
        const jobs = await q.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed', 'paused', 'prioritized']);
        return jobs.map((j) => j.id ?? '').sort();
      });
    },
  };
}
