import { afterEach, describe, expect, it } from 'vitest';
import { RunStore } from '../../../../bot/runs/run-store.ts';
import type { NewRun } from '../../../../bot/runs/run-model.ts';
import { JOBS_SHOWN } from '../../../../bot/inbound/commands/jobs-command.ts';
import { APPROVER, OPERATOR, STRANGER, sendMessage, startHarness, type Harness } from '../../../support/bot-harness.ts';
import { cardOf, cardText } from '../../../support/fake-connector.ts';

/** `jobs`, `resume <run>` and `cancel <run>` through the bot's endpoint. */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const T0 = Date.UTC(2026, 11, 1, 9, 0, 0);

function storeWithClock(t: Harness): { store: RunStore; tick: () => void } {
  let now = T0;
  return { store: new RunStore({ redis: t.redis, prefix: t.prefix, now: () => now }), tick: () => void (now += 60_000) };
}

function newRun(t: Harness, runId: string, kind: NewRun['kind'], extra: Partial<NewRun> = {}): NewRun {
  return {
    runId,
    deployment: 'contoso',
    kind,
    state: 'running',
    requester: { aadObjectId: OPERATOR.aadObjectId, name: OPERATOR.name },
    conversation: { channelId: 'msteams', serviceUrl: t.connector.url, conversation: { id: t.conversationId }, bot: { id: '28:setup-bot' } },
    ...extra,
  };
}

describe('jobs', () => {
  it('says so when there are no runs', async () => {
    h = await startHarness();
    const reply = cardText(cardOf(await sendMessage(h, OPERATOR, 'jobs')));
    expect(reply).toContain('No runs in the deployment contoso yet');
  });

  it('lists the latest runs newest first, with the step and what to do for a halted runbook run', async () => {
    h = await startHarness();
    const { store, tick } = storeWithClock(h);
    await store.create(newRun(h, 'status0001', 'status'));
    tick();
    await store.create(newRun(h, 'setup00001', 'setup', {
      steps: [
        { id: 'preflight', state: 'done' },
        { id: 'tenant-id', state: 'running', detail: 'writing S2STenantId' },
        { id: 'email-profile', state: 'pending' },
      ],
    }));
    await store.transition('setup00001', ['running'], 'halted', {
      steps: [
        { id: 'preflight', state: 'done' },
        { id: 'tenant-id', state: 'failed', detail: 'the write was rejected' },
        { id: 'email-profile', state: 'pending' },
      ],
    });
    tick();
    await store.create(newRun(h, 'profile001', 'profile', { state: 'planning', dryRun: true }));
    // Another deployment's run is not listed.
    await store.create({ ...newRun(h, 'fabrikam01', 'setup'), deployment: 'fabrikam' });

    const card = cardOf(await sendMessage(h, APPROVER, 'jobs'));
    const text = cardText(card);
    expect(text).not.toContain('fabrikam01');
    const order = ['profile001', 'setup00001', 'status0001'].map((id) => text.indexOf(id));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(text).toContain('**setup00001** · run setup · **halted**');
    expect(text).toContain('Stopped at step: Set the Exchange Online tenant ID on the organization (S2STenantId): the write was rejected');
    expect(text).toContain('`resume setup00001`');
    expect(text).toContain('`cancel setup00001`');
    expect(text).toContain('profile (show)');
    expect(text).toContain(`Asked by ${OPERATOR.name}`);
    expect(text).toContain('created 2026-12-01 09:00');
    // A finished or non-runbook run has no next step to suggest.
    expect(text).not.toContain('`cancel status0001`');
  });

  it(`shows at most ${JOBS_SHOWN} runs`, async () => {
    h = await startHarness();
    const { store, tick } = storeWithClock(h);
    for (let i = 0; i < JOBS_SHOWN + 3; i++) {
      await store.create(newRun(h, `status${String(i).padStart(4, '0')}`, 'status'));
      tick();
    }
    const text = cardText(cardOf(await sendMessage(h, OPERATOR, 'jobs')));
    expect(text.match(/\*\*status\d{4}\*\*/g)).toHaveLength(JOBS_SHOWN);
    expect(text).toContain(`status${String(JOBS_SHOWN + 2).padStart(4, '0')}`);
    expect(text).not.toContain('**status0000**');
  });

  it('is refused to someone who is neither operator nor approver', async () => {
    h = await startHarness();
    const { store } = storeWithClock(h);
    await store.create(newRun(h, 'status0001', 'status'));
    const text = cardText(cardOf(await sendMessage(h, STRANGER, 'jobs')));
    expect(text).toContain('Not allowed');
    expect(text).not.toContain('status0001');
  });
});

describe('resume / cancel <run>', () => {
  it('an unknown run, or another deployment\'s, is "No run … in this deployment"', async () => {
    h = await startHarness();
    const { store } = storeWithClock(h);
    await store.create({ ...newRun(h, 'fabrikam01', 'setup'), deployment: 'fabrikam' });
    for (const [command, id] of [['resume', 'nosuchrun1'], ['cancel', 'nosuchrun1'], ['resume', 'fabrikam01'], ['cancel', 'fabrikam01']] as const) {
      const text = cardText(cardOf(await sendMessage(h, APPROVER, `${command} ${id}`)));
      expect(text).toContain(`No run ${id} in this deployment; \`jobs\` lists them.`);
    }
    expect((await store.get('fabrikam01'))?.state).toBe('running');
  });

  it('cancel of a halted set-up run goes to the run control and cancels it', async () => {
    h = await startHarness();
    const { store } = storeWithClock(h);
    await store.create(newRun(h, 'setup00001', 'setup'));
    await store.transition('setup00001', ['running'], 'halted', {});
    const reply = cardOf(await sendMessage(h, APPROVER, 'cancel setup00001'));
    expect(cardText(reply)).not.toContain('No run');
    expect((await store.get('setup00001'))?.state).toBe('cancelled');
  });

  it('a refusal from the run control is the reply, and nothing changes', async () => {
    h = await startHarness();
    const { store } = storeWithClock(h);
    await store.create(newRun(h, 'setup00001', 'setup'));
    await store.transition('setup00001', ['running'], 'halted', {});
    // Resume is for approvers: the operator is told so.
    const text = cardText(cardOf(await sendMessage(h, OPERATOR, 'resume setup00001')));
    expect(text).toContain('SETUP_APPROVERS');
    expect((await store.get('setup00001'))?.state).toBe('halted');
    // A finished run: "already …".
    await store.create(newRun(h, 'status0001', 'status'));
    await store.transition('status0001', ['running'], 'succeeded', {});
    expect(cardText(cardOf(await sendMessage(h, APPROVER, 'cancel status0001')))).toContain('Run status0001 is already succeeded.');
  });
});
