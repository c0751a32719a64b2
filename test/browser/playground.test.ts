import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { playgroundBot, playgroundChats, playgroundUsers, requester } from '../../scripts/playground-users.ts';
import { actAs, openConversation, sendMessage, startPlaygroundStack, type PlaygroundStack } from './playground-harness.ts';

/**
 * End to end through Microsoft's own Teams stand-in: the Agents Playground in Debian's Chromium,
 * talking to the real bot, which hands signed jobs to the real agent over Redis, which works on
 * the CRM simulator. Screenshots go to /tmp/setup-playground-*.png.
 */
const approver = playgroundUsers.find((u) => u.role === 'approver');
const stranger = playgroundUsers.find((u) => u.role === 'none');
const channel = `${playgroundChats.teamName} - ${playgroundChats.channelName}`;

let stack: PlaygroundStack | undefined;

beforeAll(async () => {
  stack = await startPlaygroundStack();
}, 90_000);

afterAll(async () => {
  await stack?.close();
}, 30_000);

function s(): PlaygroundStack {
  if (!stack) throw new Error('the stack did not start');
  return stack;
}

describe('the Agents Playground, driven in Chromium', () => {
  it('operator asks in a channel, approver approves on the card, the results card has the numbers', async () => {
    const { page, proxy } = s();
    if (!approver || !stranger) throw new Error('the Playground config lacks an approver or a user without rights');
    await page.goto(proxy.url);
    await openConversation(page, channel);

    // The operator (the Playground's current user) asks.
    await sendMessage(page, 'approve mailboxes', { mention: playgroundBot.name });
    const approve = page.getByRole('button', { name: 'Approve', exact: true });
    await approve.waitFor({ timeout: 30_000 });
    await expect.poll(() => page.getByText('Mailboxes matching').count()).toBeGreaterThan(0);
    await page.screenshot({ path: '/tmp/setup-playground-1-plan.png' });

    // The approver clicks Approve (Action.Execute through the Playground).
    await actAs(page, approver.id);
    await approve.click();
    const results = page.getByText(/^Results: approve mailboxes \(run /);
    await results.waitFor({ timeout: 60_000 });
    const runCard = page.locator('.ac-adaptiveCard').filter({ hasText: /Approved by/ }).first();
    await expect.poll(() => runCard.innerText()).toMatch(new RegExp(`Approved by\\s+${approver.name}`));
    await page.screenshot({ path: '/tmp/setup-playground-2-results.png', fullPage: true });

    const resultsCard = page.locator('.ac-adaptiveCard').filter({ hasText: /Results: approve mailboxes/ });
    const text = await resultsCard.innerText();
    const number = (label: string): number => {
      const match = new RegExp(`${label}\\s+(\\d+)`).exec(text);
      if (!match?.[1]) throw new Error(`no "${label}" number on the results card:\n${text}`);
      return Number(match[1]);
    };
    const matched = number('Matched');
    const approved = number('Approved');
    const failed = number('Failed');
    expect(matched).toBeGreaterThan(0);
    expect(approved).toBeGreaterThan(0);
    expect(approved + number('Already approved') + failed).toBe(matched);

    // Someone without rights clicking Approve on a fresh plan card is refused, and nothing runs.
    await actAs(page, requester.id);
    await sendMessage(page, 'approve mailboxes all', { mention: playgroundBot.name });
    const freshApprove = page.getByRole('button', { name: 'Approve', exact: true });
    await freshApprove.waitFor({ timeout: 30_000 });
    await actAs(page, stranger.id);
    await freshApprove.click();
    await page.getByText(/Only the approvers listed in SETUP_APPROVERS may approve/).first().waitFor({ timeout: 30_000 });
    expect(await freshApprove.isVisible()).toBe(true);
    await page.screenshot({ path: '/tmp/setup-playground-3-refused.png', fullPage: true });
  }, 150_000);
});
