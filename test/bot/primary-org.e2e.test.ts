import { describe, expect, it } from 'vitest';
import { primaryOrgStartKey } from '../../bot/inbound/card-actions/primary-org-click.ts';
import { verbs } from '../../bot/cards/common/card-kit.ts';
import type { TestResult } from '../../jobs/job-types.ts';
import { APPROVER, OPERATOR, STRANGER } from '../support/bot-harness.ts';
import { botSession } from '../support/bot-session.ts';
import { cardOf, cardText } from '../support/fake-connector.ts';
import { setupPlan } from './setup-fixtures.ts';

/**
 * ACT "configured with another org" on a Test & Enable results card: the button plans `sync this
 * org only` for exactly that group's mailboxes (a plan an approver confirms), once per card; the
 * typed command does the same for a filter. And `ews show|allow` start the ews scope.
 */
const { start, harness, say, click, runStore, reportAndWait } = botSession();

const otherOrg = ['ann@contoso.com', 'ben@contoso.com'];
const testResult = (count: number, sample: string[]): TestResult => ({
  type: 'test',
  selected: count + 5,
  succeeded: 4,
  failed: count + 1,
  noResult: 0,
  failures: [
    { cause: 'another-organization', title: 'Appointments, contacts and tasks are synchronized with another organization', remediation: 'Run Test & Enable again with "sync items with Exchange from this organization only".', count, sample },
    { cause: 'exchange-unauthorized', title: 'Exchange Online refused the mailbox (401 Unauthorized)', remediation: 'Check the address.', count: 1, sample: ['carl@contoso.com'] },
  ],
  crmRequests: 7,
  durationMs: 900,
});

/** `test mailboxes failed` → plan → approved → results with the given failures; the results card. */
async function testedWith(result: TestResult) {
  const t = harness();
  const planning = await say(OPERATOR, 'test mailboxes failed');
  const plan = await t.agent.waitForJob('plan');
  await t.agent.report(plan.runId, 'plan', { kind: 'result', result: { type: 'plan', action: 'test', matched: 10, toChange: 10, sample: [] } });
  await t.connector.waitFor(() => t.connector.updates(planning.activityId).length >= 1, 'the plan card');
  await click(APPROVER, verbs.approve, plan.runId, planning.activityId);
  await t.agent.waitForJob('test', plan.runId);
  const posts = t.connector.posts().length;
  await t.agent.report(plan.runId, 'test', { kind: 'result', result });
  await t.connector.waitFor(() => t.connector.posts().length === posts + 1, 'the results card');
  const post = t.connector.posts().at(-1);
  return { runId: plan.runId, cardId: post?.activityId ?? '', card: cardOf(post) };
}

describe('sync from this organization only', () => {
  it('the results card offers it; a click plans exactly the group\'s mailboxes once; a stranger changes nothing', async () => {
    const t = await start();
    const { runId, cardId, card } = await testedWith(testResult(2, otherOrg));
    expect(card.actions?.map((a) => [a.title, a.verb, a.data])).toEqual([['Sync from this org only, then test', verbs.primaryOrg, { runId }]]);
    expect(cardText(card)).toContain('2 mailboxes sync appointments, contacts and tasks with another organization');

    const refused = await click(STRANGER, verbs.primaryOrg, runId, cardId);
    expect(String(refused.body.value)).toContain('SETUP_OPERATORS');
    expect(await t.redis.exists(primaryOrgStartKey(t.prefix, runId))).toBe(0);
    expect(t.agent.jobsOf('setup-plan')).toEqual([]);

    const posts = t.connector.posts().length;
    const first = await click(OPERATOR, verbs.primaryOrg, runId, cardId);
    expect(String(first.body.value)).toContain('Plan requested');
    const job = await t.agent.waitForJob('setup-plan');
    expect(job).toMatchObject({ scope: 'primary-org', requestedBy: OPERATOR.aadObjectId, filter: { kind: 'addresses', addresses: otherOrg } });
    expect(t.connector.posts().length).toBe(posts + 1);
    expect(cardText(cardOf(t.connector.posts().at(-1)))).toContain('Sync items with Exchange from this organization only');
    const planRun = await runStore().get(job.runId);
    expect(planRun).toMatchObject({ kind: 'primary-org', state: 'planning', filter: { kind: 'addresses', addresses: otherOrg } });

    // A double click (or another instance's) asks for no second plan.
    const second = await click(APPROVER, verbs.primaryOrg, runId, cardId);
    expect(String(second.body.value)).toContain(`already asked for from this card: run ${job.runId}`);
    expect(t.agent.jobsOf('setup-plan')).toHaveLength(1);
  });

  it('a group larger than the card\'s sample plans the failed mailboxes (the step narrows them to a failing ACT)', async () => {
    const t = await start();
    const { runId, cardId } = await testedWith(testResult(25, Array.from({ length: 10 }, (_, i) => `user${i}@contoso.com`)));
    await click(OPERATOR, verbs.primaryOrg, runId, cardId);
    expect(await t.agent.waitForJob('setup-plan')).toMatchObject({ scope: 'primary-org', filter: { kind: 'failed' } });
  });

  it('a results card without that group has no button, and a forged click on it starts nothing', async () => {
    const t = await start();
    const result = testResult(0, []);
    result.failures = result.failures.filter((g) => g.cause !== 'another-organization');
    const { runId, cardId, card } = await testedWith(result);
    expect(card.actions ?? []).toEqual([]);
    const forged = await click(OPERATOR, verbs.primaryOrg, runId, cardId);
    expect(String(forged.body.value)).toContain('no mailboxes whose appointments, contacts and tasks another organization holds');
    expect(t.agent.jobsOf('setup-plan')).toEqual([]);
  });

  it('typed: `sync this org only` plans the failed mailboxes, with a filter the given ones', async () => {
    const t = await start();
    await say(OPERATOR, 'sync this org only');
    expect(await t.agent.waitForJob('setup-plan')).toMatchObject({ scope: 'primary-org', filter: { kind: 'failed' } });
    t.agent.jobs.length = 0;
    await say(OPERATOR, 'sync this org only ann@contoso.com');
    expect(await t.agent.waitForJob('setup-plan')).toMatchObject({ scope: 'primary-org', filter: { kind: 'addresses', addresses: ['ann@contoso.com'] } });
    const bad = cardText(cardOf(await say(OPERATOR, 'sync everything')));
    expect(bad).toContain('sync this org only [filter]');
  });
});

describe('ews show|allow', () => {
  it('show is a dry run of the ews scope, allow a plan for an approver; anything else says the two forms', async () => {
    const t = await start();
    await say(OPERATOR, 'ews show');
    const shown = await t.agent.waitForJob('setup-plan');
    expect(shown).toMatchObject({ scope: 'ews' });
    expect(shown).not.toHaveProperty('filter');
    expect(await runStore().get(shown.runId)).toMatchObject({ kind: 'ews', dryRun: true });
    t.agent.jobs.length = 0;
    await say(OPERATOR, 'ews allow');
    const allow = await t.agent.waitForJob('setup-plan');
    expect((await runStore().get(allow.runId))?.dryRun).toBeUndefined();
    const wrong = cardText(cardOf(await say(OPERATOR, 'ews allow 00000007-0000-0000-c000-000000000000')));
    expect(wrong).toContain('The app ID to allow is the agent\'s EWS_APP_ID, never what is typed.');
  });

  it('allow: the plan card shows the EWS section and needs an approver; an operator cannot approve; the approver starts the ews run', async () => {
    const t = await start();
    const planning = await say(OPERATOR, 'ews allow');
    const job = await t.agent.waitForJob('setup-plan');
    const plan = { ...setupPlan('ews'), ews: { verdict: 'blocked' as const, organizationEnabled: false, appId: '00000007-0000-0000-c000-000000000000', appAllowed: false, allowedAppIds: [], applicationAccessPolicy: null, mailboxesChecked: 40, mailboxesDisabled: 0, disabledSample: [], daysLeft: 115, detail: 'Exchange Online blocks EWS for CRM.', fix: 'Run `@setup ews allow`.' } };
    const card = await reportAndWait(planning.activityId, job.runId, 'setup-plan', { kind: 'result', result: plan });
    const text = cardText(card);
    expect(text).toContain('EWS access for CRM in Exchange Online');
    expect(text).toContain('EWS is blocked for CRM in Exchange Online');
    expect(text).toContain('115 days left');
    expect(card.actions?.map((a) => a.title)).toEqual(['Approve', 'Reject']);
    const refused = await click(OPERATOR, verbs.approve, job.runId, planning.activityId);
    expect(String(refused.body.value)).toContain('SETUP_APPROVERS');
    expect(t.agent.jobsOf('setup-run')).toEqual([]);
    await click(APPROVER, verbs.approve, job.runId, planning.activityId);
    expect(await t.agent.waitForJob('setup-run', job.runId)).toMatchObject({ scope: 'ews', approvedBy: APPROVER.aadObjectId, attempt: 1 });
  });
});
