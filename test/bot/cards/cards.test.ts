import { describe, expect, it } from 'vitest';
import { MAX_CARD_BYTES, cardBytes, type AdaptiveCardJson } from '../../../bot/cards/common/card-kit.ts';
import { helpCard } from '../../../bot/cards/common/help-card.ts';
import { errorCard, refusalCard } from '../../../bot/cards/common/message-cards.ts';
import { decidedCard, planCard, planFailedCard, planningCard } from '../../../bot/cards/mailboxes/plan-cards.ts';
import { resultsCard, runCard } from '../../../bot/cards/mailboxes/run-cards.ts';
import { statusCard, statusCheckingCard, statusFailedCard } from '../../../bot/cards/mailboxes/status-card.ts';
import type { Run } from '../../../bot/runs/run-model.ts';
import type { FailureGroup, PlanResult } from '../../../jobs/job-types.ts';

const longAddress = `${'a'.repeat(60)}@${'b'.repeat(60)}.contoso.com`;
const plan: PlanResult = { type: 'plan', action: 'approve', matched: 5000, toChange: 4000, sample: Array.from({ length: 10 }, () => longAddress) };

function run(overrides: Partial<Run> = {}): Run {
  return {
    runId: 'abcdef1234',
    deployment: 'contoso',
    kind: 'approve',
    state: 'awaiting-approval',
    filter: { kind: 'addresses', addresses: Array.from({ length: 50 }, () => longAddress) },
    requester: { aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'Olivia' },
    conversation: { channelId: 'msteams', serviceUrl: 'http://127.0.0.1:1/', conversation: { id: 'c' }, bot: { id: 'b' } },
    cardActivityId: 'm1',
    createdAt: '2030-01-01T00:00:00.000Z',
    updatedAt: '2030-01-01T00:00:00.000Z',
    expiresAt: '2030-01-01T01:00:00.000Z',
    plan,
    attempt: 1,
    progressSeq: -1,
    lastPostedSeq: -1,
    lastPostedAt: 0,
    finalPostedSeq: -1,
    resultsSentSeq: -1,
    ...overrides,
  };
}

const group: FailureGroup = {
  cause: 'x'.repeat(64),
  title: 'T'.repeat(200),
  remediation: 'R'.repeat(600),
  count: 999,
  sample: Array.from({ length: 10 }, () => longAddress),
  example: 'E'.repeat(400),
};

function allCards(): [string, AdaptiveCardJson][] {
  const r = run();
  return [
    ['help', helpCard('notice')],
    ['refusal', refusalCard('Only the approvers listed in SETUP_APPROVERS may approve.')],
    ['error', errorCard('Oops', 'What to do.')],
    ['planning', planningCard(r)],
    ['plan', planCard(r, plan)],
    ['plan (test)', planCard(run({ kind: 'test' }), plan)],
    ['approved', decidedCard(run({ state: 'approved', approval: { decision: 'approved', decidedBy: { aadObjectId: '2', name: 'Adam' }, decidedAt: '2030-01-01T00:10:00.000Z' } }))],
    ['rejected', decidedCard(run({ state: 'rejected', approval: { decision: 'rejected', decidedBy: { aadObjectId: '2', name: 'Adam' }, decidedAt: '2030-01-01T00:10:00.000Z' } }))],
    ['expired', decidedCard(run({ state: 'expired' }))],
    ['progress', runCard(run({ state: 'running', progress: { phase: 'approving', done: 10, total: 40, counts: { approved: 9, failed: 1 } } }))],
    ['failed', runCard(run({ state: 'failed', error: { code: 'CRM_AUTH_FAILED', message: 'm'.repeat(1000), hint: 'h'.repeat(1000) } }))],
    ['results (approve)', resultsCard(r, { type: 'approve', matched: 5000, approved: 3000, alreadyApproved: 1000, failed: 1000, failures: Array.from({ length: 20 }, () => group), crmRequests: 100, durationMs: 1000 })],
    ['results (test)', resultsCard(run({ kind: 'test' }), { type: 'test', selected: 10, succeeded: 5, failed: 3, noResult: 2, failures: Array.from({ length: 20 }, () => group), crmRequests: 100, durationMs: 1000 })],
    ['no plan (failed)', planFailedCard(run({ state: 'plan-failed', error: { code: 'AGENT_NO_ANSWER', message: 'm'.repeat(1000), hint: 'h'.repeat(1000) } }))],
    ['status failed', statusFailedCard(run({ kind: 'status', state: 'failed', error: { code: 'AGENT_NO_ANSWER', message: 'm'.repeat(1000), hint: 'h'.repeat(1000) } }), { lastSeenSeconds: 90 })],
    ['status checking', statusCheckingCard(r, { lastSeenSeconds: undefined })],
    ['status', statusCard(r, { lastSeenSeconds: 4 }, { type: 'status', total: 3, approval: { empty: 0, approved: 1, pending: 1, rejected: 1 }, test: { success: 1, failure: 1, notRun: 1 }, crmUser: 'svc' })],
  ];
}

describe('cards', () => {
  it.each(allCards())('%s is an Adaptive Card 1.5 under 28 KB even with maximal content', (_name, card) => {
    expect(card.type).toBe('AdaptiveCard');
    expect(card.version).toBe('1.5');
    expect(Array.isArray(card.body)).toBe(true);
    expect(cardBytes(card)).toBeLessThan(MAX_CARD_BYTES);
  });

  it('puts buttons only on the plan card, each carrying only the run id', () => {
    for (const [name, card] of allCards()) {
      const actions = card.actions ?? [];
      if (name.startsWith('plan') && name !== 'planning') {
        expect(actions.length).toBe(2);
        for (const a of actions) {
          expect(a.type).toBe('Action.Execute');
          expect(a['data']).toEqual({ runId: 'abcdef1234' });
        }
      } else {
        expect(actions, name).toEqual([]);
      }
    }
  });

  it('says what will change and labels the buttons for each action', () => {
    const r = run();
    const approve = planCard(r, plan);
    expect(JSON.stringify(approve)).toContain('Approve Email: emailrouteraccessapproval → Approved');
    expect(approve.actions?.map((a) => a['title'])).toEqual(['Approve', 'Reject']);
    const test = planCard(run({ kind: 'test' }), plan);
    expect(test.actions?.map((a) => a['title'])).toEqual(['Confirm', 'Cancel']);
  });

  it('says the work is limited to about the planned count', () => {
    const r = run();
    expect(JSON.stringify(planCard(r, plan))).toContain('This approval covers about 4,000 mailboxes. The agent stops if the selection has grown beyond this plan.');
    expect(JSON.stringify(planCard(run({ kind: 'test' }), { ...plan, toChange: 1 }))).toContain('This confirmation covers about 1 mailbox. The agent stops');
  });

  it('shows no buttons when nothing would change', () => {
    const r = run();
    expect(planCard(r, { ...plan, toChange: 0 }).actions).toBeUndefined();
  });

  it('names who decided', () => {
    const card = decidedCard(run({ state: 'rejected', approval: { decision: 'rejected', decidedBy: { aadObjectId: '2', name: 'Adam' }, decidedAt: '2030-01-01T00:10:00.000Z' } }));
    expect(JSON.stringify(card)).toContain('Rejected by Adam');
  });
});
