import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { playgroundBot, playgroundChats, playgroundUsers, requester } from '../../scripts/playground-users.ts';
import { s2sHealth } from '../../sim/s2s-state.ts';
import { actAs, openConversation, sendMessage, startPlaygroundStack, type PlaygroundStack } from './playground-harness.ts';

/**
 * The first set-up as the administrators see it: in the Agents Playground (Chromium), against the
 * real bot and agent, on a fresh (unconfigured) simulated deployment with the PowerShell stand-in
 * and the Graph simulator. `run setup` → the requester confirms the checklist → a second person
 * approves → every step green and a Test & Enable report; `run setup` again → nothing to change.
 * Screenshots go to /tmp/setup-playground-runbook-*.png.
 */
const approver = playgroundUsers.find((u) => u.role === 'approver');
const channel = `${playgroundChats.teamName} - ${playgroundChats.channelName}`;

let stack: PlaygroundStack | undefined;

beforeAll(async () => {
  stack = await startPlaygroundStack({ scenario: 'fresh' });
}, 90_000);

afterAll(async () => {
  await stack?.close();
}, 30_000);

function s(): PlaygroundStack {
  if (!stack) throw new Error('the stack did not start');
  return stack;
}

describe('run setup in the Agents Playground', () => {
  it('on a fresh deployment ends with every step green and a Test & Enable report; the second run has nothing to change', async () => {
    const { page, proxy, sim } = s();
    if (!approver) throw new Error('the Playground config lacks an approver');
    const cardWith = (text: string | RegExp) => page.locator('.ac-adaptiveCard').filter({ hasText: text });
    expect(s2sHealth(sim.s2s, Date.now()).ok).toBe(false);

    await page.goto(proxy.url);
    await openConversation(page, channel);

    // The requester asks; the plan lists what would change and the checklist questions.
    await sendMessage(page, 'run setup', { mention: playgroundBot.name });
    const plan = cardWith(/Confirm checklist/).first();
    await plan.waitFor({ timeout: 60_000 });
    const planText = await plan.innerText();
    expect(planText).toContain('would create profile');
    expect(planText).toMatch(/Hybrid Connector/);
    await page.screenshot({ path: '/tmp/setup-playground-runbook-1-plan.png', fullPage: true });

    // The requester ticks both questions and confirms; the approver (another person) approves.
    const toggles = plan.getByRole('checkbox');
    expect(await toggles.count()).toBe(2);
    await toggles.nth(0).check();
    await toggles.nth(1).check();
    await plan.getByRole('button', { name: 'Confirm checklist' }).click();
    const confirmed = cardWith(/Confirmed by/).filter({ hasText: /Approve/ }).first();
    await confirmed.waitFor({ timeout: 60_000 });
    await actAs(page, approver.id);
    await confirmed.getByRole('button', { name: 'Approve', exact: true }).click();

    // Every step runs; the results card has every step green and the Test & Enable report.
    const results = cardWith(/Test & Enable report/).first();
    await results.waitFor({ timeout: 120_000 });
    const resultsText = await results.innerText();
    expect(resultsText).not.toContain('✗');
    expect((resultsText.match(/✓/g) ?? []).length).toBeGreaterThanOrEqual(13);
    expect(resultsText).toContain('Test & Enable succeeded for 120 of 120 mailboxes');
    expect(s2sHealth(sim.s2s, Date.now())).toEqual({ ok: true });
    await page.screenshot({ path: '/tmp/setup-playground-runbook-2-results.png', fullPage: true });

    // Again: nothing to change.
    await actAs(page, requester.id);
    await sendMessage(page, 'run setup', { mention: playgroundBot.name });
    const nothing = cardWith(/Nothing to change/).first();
    await nothing.waitFor({ timeout: 60_000 });
    await page.screenshot({ path: '/tmp/setup-playground-runbook-3-nothing-to-change.png', fullPage: true });
  }, 240_000);
});
