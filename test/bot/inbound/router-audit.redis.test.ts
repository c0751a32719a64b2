import { afterEach, describe, expect, it } from 'vitest';
import { createAuditLog, type StoredAuditEntry } from '../../../core/audit-log.ts';
import { APPROVER, OPERATOR, STRANGER, clickCard, post, messageActivity, sendMessage, startHarness, type Harness } from '../../support/bot-harness.ts';
import { cardOf, cardText } from '../../support/fake-connector.ts';
import { recordAudit } from '../../../bot/audit-trail.ts';
import type { ActivityRequest } from '../../../bot/bot-services.ts';

/** What the router and the card actions append to the audit log. */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function latest(t: Harness, n = 1): Promise<StoredAuditEntry[]> {
  return createAuditLog({ redis: t.redis, prefix: t.prefix }).latest('contoso', n);
}

describe('audit entries of messages', () => {
  it('a command: who, the parsed command with its filter, accepted', async () => {
    h = await startHarness();
    await sendMessage(h, OPERATOR, 'jobs');
    expect((await latest(h))[0]).toMatchObject({ kind: 'command', actor: OPERATOR.name, actorId: OPERATOR.aadObjectId, what: 'jobs', outcome: 'accepted', deployment: 'contoso' });

    await sendMessage(h, OPERATOR, 'approve mailboxes email ends with @Contoso.com');
    const [entry] = await latest(h);
    expect(entry).toMatchObject({ kind: 'command', what: 'approve mailboxes (filter: mailboxes whose email ends with @Contoso.com)', outcome: 'accepted' });
    expect(entry?.runId).toBeUndefined();

    await sendMessage(h, APPROVER, 'run setup --dry-run');
    expect((await latest(h))[0]).toMatchObject({ what: 'run setup --dry-run (filter: all active mailboxes)', actor: APPROVER.name });

    await sendMessage(h, APPROVER, 'cancel abcdef1234');
    expect((await latest(h))[0]).toMatchObject({ kind: 'command', what: 'cancel abcdef1234', runId: 'abcdef1234', outcome: 'accepted' });
  });

  it('a refusal: a message that does not parse (never its text), or a person without rights', async () => {
    h = await startHarness();
    await sendMessage(h, OPERATOR, 'frobnicate hunter2-secret');
    let [entry] = await latest(h);
    expect(entry).toMatchObject({ kind: 'refusal', actor: OPERATOR.name, what: 'unrecognised message', outcome: 'COMMAND_UNKNOWN' });
    expect(JSON.stringify(entry)).not.toContain('hunter2');

    await sendMessage(h, OPERATOR, 'audit 9999 hunter2');
    [entry] = await latest(h);
    expect(entry).toMatchObject({ kind: 'refusal', what: 'invalid `audit` command', outcome: 'COMMAND_INVALID' });
    expect(JSON.stringify(entry)).not.toContain('hunter2');

    await sendMessage(h, OPERATOR, 'approve mailboxes email ends with @@nope');
    [entry] = await latest(h);
    expect(entry).toMatchObject({ kind: 'refusal', what: 'invalid `approve` command', outcome: 'FILTER_INVALID' });

    await sendMessage(h, STRANGER, 'run setup');
    [entry] = await latest(h);
    expect(entry).toMatchObject({ kind: 'refusal', actor: STRANGER.name, actorId: STRANGER.aadObjectId, what: 'run setup (filter: all active mailboxes)', outcome: 'NOT_AUTHORIZED' });

    // help is anyone's: accepted.
    await sendMessage(h, STRANGER, 'help');
    expect((await latest(h))[0]).toMatchObject({ kind: 'command', what: 'help', outcome: 'accepted' });
  });

  it('a failed append is logged and never breaks the command', async () => {
    h = await startHarness();
    // The stream key holds a string: XADD fails with WRONGTYPE.
    await h.redis.set(`${h.prefix}:audit:contoso`, 'not a stream');
    const reply = cardText(cardOf(await sendMessage(h, OPERATOR, 'jobs')));
    expect(reply).toContain('No runs in the deployment contoso yet');
    const res = await post(h.bots[0]!, messageActivity(h, OPERATOR, 'nonsense words'));
    expect(res.status).toBe(200);
  });
});

describe('audit entries of card clicks', () => {
  it('refused (a click on an unknown run; a forged run id is not recorded), then ok (an approval)', async () => {
    h = await startHarness();
    const t = h;
    await clickCard(t, APPROVER, 'run.approve', 'zzzzzzzz01', 'm-none');
    let [entry] = await latest(t);
    expect(entry).toMatchObject({ kind: 'click', actor: APPROVER.name, actorId: APPROVER.aadObjectId, what: 'run.approve', runId: 'zzzzzzzz01' });
    expect(entry?.outcome).toMatch(/^refused: This run is unknown/);
    expect(entry?.outcome.length).toBeLessThanOrEqual(170);

    await clickCard(t, APPROVER, 'run.reject', 'NOT A RUN ID!', 'm-none');
    [entry] = await latest(t);
    expect(entry).toMatchObject({ kind: 'click', what: 'run.reject' });
    expect(entry?.outcome).toMatch(/^refused: This card is not valid/);
    expect(entry?.runId).toBeUndefined();

    const planning = await sendMessage(t, OPERATOR, 'approve mailboxes pending');
    const job = await t.agent.waitForJob('plan');
    await t.agent.report(job.runId, 'plan', { kind: 'result', result: { type: 'plan', action: 'approve', matched: 1, toChange: 1, sample: [] } });
    await t.connector.waitFor(() => t.connector.updates(planning.activityId).length === 1, 'the plan card');

    // A stranger's Approve says who may approve; their Cancel says who may run commands. Neither says anything about the run.
    await clickCard(t, STRANGER, 'run.approve', job.runId, planning.activityId);
    [entry] = await latest(t);
    expect(entry).toMatchObject({ kind: 'click', actor: STRANGER.name, runId: job.runId });
    expect(entry?.outcome).toMatch(/^refused: Only the approvers listed in SETUP_APPROVERS may approve/);
    await clickCard(t, STRANGER, 'run.cancel', job.runId, planning.activityId);
    [entry] = await latest(t);
    expect(entry?.outcome).toMatch(/^refused: Only the operators listed in SETUP_OPERATORS/);

    // The operator may not approve: refused with the reason; the approver's click is ok.
    await clickCard(t, OPERATOR, 'run.approve', job.runId, planning.activityId);
    [entry] = await latest(t);
    expect(entry).toMatchObject({ kind: 'click', actor: OPERATOR.name, runId: job.runId });
    expect(entry?.outcome).toMatch(/^refused: Only the approvers/);

    const click = await clickCard(t, APPROVER, 'run.approve', job.runId, planning.activityId);
    expect(typeof click.body.value).not.toBe('string');
    [entry] = await latest(t);
    expect(entry).toMatchObject({ kind: 'click', actor: APPROVER.name, what: 'run.approve', runId: job.runId, outcome: 'ok' });
  });
});

describe('recordAudit', () => {
  it('waits at most its bound for a slow log, and a failure never throws', async () => {
    const warnings: string[] = [];
    const log = { warn: (_o: unknown, msg: string) => void warnings.push(msg) };
    const fakeReq = (append: () => Promise<void>) =>
      ({ services: { audit: { append }, config: { deployment: 'contoso' } }, from: { name: 'Olivia', aadObjectId: 'id-1' }, log }) as unknown as ActivityRequest;

    const started = Date.now();
    await recordAudit(fakeReq(() => new Promise<void>(() => undefined)), { kind: 'command', what: 'jobs', outcome: 'accepted' }, 50);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(warnings.at(-1)).toMatch(/slow/);

    await recordAudit(fakeReq(() => Promise.reject(new Error('WRONGTYPE'))), { kind: 'command', what: 'jobs', outcome: 'accepted' }, 50);
    expect(warnings.at(-1)).toBe('could not append to the audit log');

    let seen: unknown;
    const capture = (entry?: unknown) => {
      seen = entry;
      return Promise.resolve();
    };
    await recordAudit(fakeReq(capture), { kind: 'click', what: 'run.approve', runId: 'not a run id', outcome: 'ok' });
    expect(seen).toMatchObject({ deployment: 'contoso', actor: 'Olivia', actorId: 'id-1', kind: 'click' });
    expect(seen).not.toHaveProperty('runId');
  });
});
