import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { jobQueueName } from '../../jobs/deployment.ts';
import { jobAddOptions, signJob } from '../../jobs/job-options.ts';
import { EmailRouterAccessApproval as A, MailboxTestStatus as T } from '../../jobs/crm-values.ts';
import type { MailboxRecord } from '../../sim/sim-state.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { APPROVER, OPERATOR, STACK_SIGNING_KEY, STRANGER, startFullStack, type FullStack } from '../support/full-stack.ts';

/**
 * The whole path on real parts: HTTP activities into the real bot, BullMQ on real Redis, the real
 * agent, the CRM Web API simulator over HTTP, and the card updates the bot sends back.
 */
let stack: FullStack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const active = (m: MailboxRecord) => m.statecode === 0;
const pending = (m: MailboxRecord) => active(m) && (m.emailrouteraccessapproval === A.Empty || m.emailrouteraccessapproval === A.PendingApproval);

function factValue(text: string, label: string): number {
  const match = new RegExp(`${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\| (\\d+)`).exec(text);
  if (!match?.[1]) throw new Error(`no "${label}" in: ${text}`);
  return Number(match[1]);
}

function runIdOf(text: string): string {
  const match = /Run \| ([a-z0-9]{8,32})/.exec(text);
  if (!match?.[1]) throw new Error(`no run id in: ${text}`);
  return match[1];
}

async function planCard(s: FullStack, command: string) {
  const planning = await s.say(OPERATOR, command);
  expect(cardText(cardOf(planning))).toContain('Planning');
  const text = await s.waitForCard(planning.activityId, (t) => t.includes('Mailboxes matching'), 'the plan card');
  return { cardId: planning.activityId, text, runId: runIdOf(text) };
}

describe('approve mailboxes, end to end', () => {
  it('approves every pending mailbox with one command and one click, and the results match CRM', async () => {
    stack = await startFullStack({ sim: { mailboxCount: 540 } });
    const s = stack;
    const pendingBefore = [...s.sim.state.mailboxes.values()].filter(pending);
    expect(pendingBefore.length).toBeGreaterThanOrEqual(300);

    const plan = await planCard(s, 'approve mailboxes');
    expect(factValue(plan.text, 'Mailboxes matching')).toBe(pendingBefore.length);

    // A non-approver's click changes nothing and says who may approve.
    const refused = await s.click(STRANGER, 'run.approve', plan.runId, plan.cardId);
    expect(refused.status).toBe(200);
    expect(JSON.stringify(refused.body)).toMatch(/approver/i);
    const requesterClick = await s.click(OPERATOR, 'run.approve', plan.runId, plan.cardId);
    expect(JSON.stringify(requesterClick.body)).toMatch(/approver/i);
    expect([...s.sim.state.mailboxes.values()].filter(pending).length).toBe(pendingBefore.length);
    expect(s.sim.stats.byMethod['batch:PATCH'] ?? 0).toBe(0);

    const approved = await s.click(APPROVER, 'run.approve', plan.runId, plan.cardId);
    expect(approved.status).toBe(200);

    await s.connector.waitFor(() => s.connector.posts().some((p) => cardText(cardOf(p)).includes('Results')), 'the results card', 30_000);
    const results = cardText(cardOf(s.connector.posts().find((p) => cardText(cardOf(p)).includes('Results'))));

    const after = [...s.sim.state.mailboxes.values()];
    const nowApproved = pendingBefore.filter((m) => s.sim.state.mailboxes.get(m.mailboxid)?.emailrouteraccessapproval === A.Approved);
    const stillPending = after.filter(pending);
    expect(factValue(results, 'Matched')).toBe(pendingBefore.length);
    expect(factValue(results, 'Approved')).toBe(nowApproved.length);
    expect(factValue(results, 'Failed')).toBe(stillPending.length);
    // The only ones left are those whose owner lacks the approve privilege, reported as such.
    expect(nowApproved.length + stillPending.length).toBe(pendingBefore.length);
    if (stillPending.length > 0) expect(results).toMatch(/privilege/i);
    // The run card reached its final state in place.
    await s.waitForCard(plan.cardId, (t) => /approved|finished|done|complete/i.test(t) && !t.includes('Queued'), 'the final run card');
  });

  it('a double click, a replayed invoke and a second bot instance run the work once', async () => {
    stack = await startFullStack({ sim: { mailboxCount: 120 }, bots: 2 });
    const s = stack;
    const pendingCount = [...s.sim.state.mailboxes.values()].filter(pending).length;
    const plan = await planCard(s, 'approve mailboxes');
    const clicks = await Promise.all([
      s.click(APPROVER, 'run.approve', plan.runId, plan.cardId),
      s.click(APPROVER, 'run.approve', plan.runId, plan.cardId),
      s.click(APPROVER, 'run.approve', plan.runId, plan.cardId),
    ]);
    for (const c of clicks) expect(c.status).toBe(200);
    await s.connector.waitFor(() => s.connector.posts().some((p) => cardText(cardOf(p)).includes('Results')), 'the results card', 30_000);
    // One approve job: each pending mailbox was written once, and one results card was posted.
    expect(s.sim.stats.byMethod['batch:PATCH']).toBe(pendingCount);
    expect(s.connector.posts().filter((p) => cardText(cardOf(p)).includes('Results')).length).toBe(1);
    const again = await s.click(APPROVER, 'run.approve', plan.runId, plan.cardId);
    expect(JSON.stringify(again.body)).toMatch(/already/i);
    expect(s.sim.stats.byMethod['batch:PATCH']).toBe(pendingCount);
  });

  it('a tampered job never reaches CRM', async () => {
    stack = await startFullStack({ sim: { mailboxCount: 50 } });
    const s = stack;
    const signer = new EnvelopeSigner({ key: STACK_SIGNING_KEY });
    const envelope = signJob(signer, {
      type: 'approve',
      runId: 'tamper0001',
      deployment: 'contoso',
      requestedBy: OPERATOR.aadObjectId,
      approvedBy: APPROVER.aadObjectId,
      plannedCount: 1,
      filter: { kind: 'addresses', addresses: ['nobody@contoso.com'] },
    });
    // Someone with write access to Redis widens the selection after signing.
    const tampered = { ...envelope, body: { ...envelope.body, filter: { kind: 'all' } } };
    const queue = new Queue(jobQueueName('contoso'), { connection: s.redis, prefix: s.prefix });
    const job = await queue.add('approve', tampered, jobAddOptions('tamper0001', 'approve'));
    const started = Date.now();
    let state = await job.getState();
    while (state !== 'failed' && Date.now() - started < 10_000) {
      await new Promise((r) => setTimeout(r, 50));
      state = await job.getState();
    }
    expect(state).toBe('failed');
    const failed = await queue.getJob(job.id ?? '');
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toMatch(/signature/i);
    expect(s.sim.stats.requests).toBe(0);
    await queue.close();
  });
});

describe('test mailboxes, end to end', () => {
  it('schedules Test & Enable, collects the results and groups the failures by cause', async () => {
    stack = await startFullStack({ sim: { mailboxCount: 200, testDelayMs: 150 } });
    const s = stack;
    const plan = await planCard(s, 'test mailboxes all');
    const selected = factValue(plan.text, 'Mailboxes matching');
    expect(selected).toBe([...s.sim.state.mailboxes.values()].filter(active).length);
    const confirmed = await s.click(OPERATOR, 'run.approve', plan.runId, plan.cardId);
    expect(confirmed.status).toBe(200);
    await s.connector.waitFor(() => s.connector.posts().some((p) => cardText(cardOf(p)).includes('Results')), 'the results card', 30_000);
    const results = cardText(cardOf(s.connector.posts().find((p) => cardText(cardOf(p)).includes('Results'))));
    const mailboxes = [...s.sim.state.mailboxes.values()].filter(active);
    const succeeded = mailboxes.filter((m) => m.incomingemailstatus === T.Success && m.outgoingemailstatus === T.Success).length;
    expect(factValue(results, 'Selected')).toBe(selected);
    expect(factValue(results, 'Succeeded')).toBe(succeeded);
    expect(factValue(results, 'Failed')).toBe(selected - succeeded);
    // Unapproved mailboxes fail with the documented remedy.
    expect(results).toMatch(/Approve Email/);
  });
});
