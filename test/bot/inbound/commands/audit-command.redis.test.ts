import { afterEach, describe, expect, it } from 'vitest';
import { createAuditLog } from '../../../../core/audit-log.ts';
import { auditCard } from '../../../../bot/cards/common/audit-card.ts';
import { APPROVER, OPERATOR, STRANGER, sendMessage, startHarness, type Harness } from '../../../support/bot-harness.ts';
import { cardOf, cardText } from '../../../support/fake-connector.ts';

/** `audit [n]` through the bot's endpoint. */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function logOf(t: Harness) {
  return createAuditLog({ redis: t.redis, prefix: t.prefix });
}

describe('audit [n]', () => {
  it('an empty log says so (the card; through the bot the `audit` command itself is the first entry)', async () => {
    expect(cardText(auditCard([], 'contoso'))).toContain('The audit log of the deployment contoso is empty.');
    h = await startHarness();
    const text = cardText(cardOf(await sendMessage(h, OPERATOR, 'audit')));
    expect(text).toContain('The latest entry of the deployment contoso');
    expect(text).toContain('audit 10 → accepted');
  });

  it('shows the latest n entries newest first: when, who, what, run, outcome', async () => {
    h = await startHarness();
    const t = h;
    const log = logOf(t);
    for (let i = 1; i <= 6; i++) {
      await log.append({ deployment: 'contoso', actor: 'agent crmapp01', kind: 'step', what: `step number-${i}`, runId: 'setup00001', outcome: i === 6 ? 'failed: the write was rejected' : 'done' });
    }
    await log.append({ deployment: 'fabrikam', actor: 'Fay', kind: 'command', what: 'elsewhere', outcome: 'accepted' });

    const card = cardOf(await sendMessage(t, APPROVER, 'audit 4'));
    const text = cardText(card);
    // The `audit 4` command itself is the newest entry, then steps 6, 5, 4.
    expect(text).toContain(`${APPROVER.name} · command`);
    expect(text).toContain('audit 4 → accepted');
    expect(text).toContain('step number-6 → failed: the write was rejected');
    expect(text).toContain('run setup00001');
    expect(text).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC · agent crmapp01 · step/);
    expect(text).not.toContain('number-3');
    expect(text).not.toContain('elsewhere');
    const positions = ['audit 4 →', 'number-6', 'number-5', 'number-4'].map((s) => text.indexOf(s));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it('is refused to someone who is neither operator nor approver, and the refusal is audited', async () => {
    h = await startHarness();
    const t = h;
    await logOf(t).append({ deployment: 'contoso', actor: 'agent crmapp01', kind: 'result', what: 'run setup', outcome: 'succeeded' });
    const text = cardText(cardOf(await sendMessage(t, STRANGER, 'audit 5')));
    expect(text).toContain('Not allowed');
    expect(text).not.toContain('succeeded');
    const [latest] = await logOf(t).latest('contoso', 1);
    expect(latest).toMatchObject({ kind: 'refusal', actor: STRANGER.name, actorId: STRANGER.aadObjectId, what: 'audit 5', outcome: 'NOT_AUTHORIZED' });
  });

  it('keeps the card under Teams\' size limit with long entries', async () => {
    h = await startHarness();
    const t = h;
    const log = logOf(t);
    for (let i = 0; i < 60; i++) await log.append({ deployment: 'contoso', actor: 'a'.repeat(200), kind: 'step', what: 'w'.repeat(300), outcome: 'o'.repeat(500) });
    const call = await sendMessage(t, OPERATOR, 'audit 50');
    const bytes = Buffer.byteLength(JSON.stringify(cardOf(call)), 'utf8');
    expect(bytes).toBeLessThanOrEqual(28 * 1024);
    expect(cardText(cardOf(call))).toContain('The latest');
  });
});
