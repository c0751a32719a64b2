import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { playgroundBot, playgroundChats, playgroundUsers, requester } from '../../scripts/playground-users.ts';
import { s2sHealth } from '../../sim/s2s-state.ts';
import { actAs, openConversation, sendMessage, startPlaygroundStack, type PlaygroundStack } from './playground-harness.ts';

/**
 * Certificate rotation as the administrators see it: in the Agents Playground (Chromium), against
 * the real bot and agent, the PowerShell stand-in and the Graph simulator. The simulated
 * certificate has 12 days left, so the watch posts the 14-day rotation-due card. Screenshots go to
 * /tmp/setup-playground-cert-*.png.
 */
const approver = playgroundUsers.find((u) => u.role === 'approver');
const channel = `${playgroundChats.teamName} - ${playgroundChats.channelName}`;

let stack: PlaygroundStack | undefined;

beforeAll(async () => {
  stack = await startPlaygroundStack({ certDaysLeft: 12 });
}, 90_000);

afterAll(async () => {
  await stack?.close();
}, 30_000);

function s(): PlaygroundStack {
  if (!stack) throw new Error('the stack did not start');
  return stack;
}

const breakage = (keyAccessNotApplied: boolean) =>
  fetch(`${s().sim.baseUrl}/_sim/s2s/breakage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyAccessNotApplied }) });

describe('certificate rotation in the Agents Playground', () => {
  it('rotation-due card → Start rotation → a second person approves; a broken rotation is caught and rolled back; fixed, it rotates', async () => {
    const { page, proxy, sim } = s();
    if (!approver) throw new Error('the Playground config lacks an approver');
    const cardWith = (text: string | RegExp) => page.locator('.ac-adaptiveCard').filter({ hasText: text });
    const health = () => s2sHealth(sim.s2s, Date.now());
    const oldThumbprint = sim.s2s.crmCertificate?.thumbprint;
    // The key ACL is silently not applied (a GPO resets it): the rotation will look fine step by step.
    await breakage(true);

    await page.goto(proxy.url);
    await openConversation(page, channel);

    // The watch: the rotation-due card with its button.
    await sendMessage(page, 'cert watch here', { mention: playgroundBot.name });
    const due = cardWith(/rotation due/).first();
    await due.waitFor({ timeout: 60_000 });
    expect(await due.innerText()).toContain('14-day');
    await page.screenshot({ path: '/tmp/setup-playground-cert-1-due.png', fullPage: true });

    // The operator starts the rotation from the card; the plan needs someone else.
    await due.getByRole('button', { name: 'Start rotation' }).click();
    const plan = cardWith(/Needs an approver other than/).first();
    await plan.waitFor({ timeout: 60_000 });
    expect(await plan.innerText()).toContain('would import on CRMAPP01, CRMAPP02');
    await plan.getByRole('button', { name: 'Approve', exact: true }).click();
    await page.getByText(/Only the approvers listed in SETUP_APPROVERS|another approver must approve it/).first().waitFor({ timeout: 60_000 });
    expect(sim.s2s.crmCertificate?.thumbprint).toBe(oldThumbprint);

    // The approver approves: every step runs, and verification catches the broken key access.
    await actAs(page, approver.id);
    await plan.getByRole('button', { name: 'Approve', exact: true }).click();
    const halted = cardWith(/did not pass Test & Enable/).first();
    await halted.waitFor({ timeout: 60_000 });
    expect(await halted.innerText()).toMatch(/cannot read the certificate's private key/);
    expect(health()).toMatchObject({ ok: false, reason: 'key-not-readable' });
    await page.screenshot({ path: '/tmp/setup-playground-cert-2-halted.png', fullPage: true });

    // The operator asks for the rollback; the approver approves it; mail works again.
    await actAs(page, requester.id);
    await halted.getByRole('button', { name: 'Roll back' }).click();
    const rollback = cardWith(/Roll back the S2S certificate/).filter({ hasText: /Needs an approver other than/ }).first();
    await rollback.waitFor({ timeout: 60_000 });
    await actAs(page, approver.id);
    await rollback.getByRole('button', { name: 'Approve', exact: true }).click();
    await cardWith(/Rolled back: /).first().waitFor({ timeout: 60_000 });
    expect(sim.s2s.crmCertificate?.thumbprint).toBe(oldThumbprint);
    expect(health()).toEqual({ ok: true });
    await page.screenshot({ path: '/tmp/setup-playground-cert-3-rolled-back.png', fullPage: true });

    // The cause fixed, the operator rotates again; the approver approves; verified.
    await breakage(false);
    await actAs(page, requester.id);
    await sendMessage(page, 'cert rotate', { mention: playgroundBot.name });
    const again = cardWith(/Needs an approver other than/).filter({ hasText: /Approve/ }).last();
    await again.waitFor({ timeout: 60_000 });
    await actAs(page, approver.id);
    await again.getByRole('button', { name: 'Approve', exact: true }).click();
    const rotated = cardWith(/Rotated: /).first();
    await rotated.waitFor({ timeout: 60_000 });
    expect(await rotated.innerText()).toMatch(/10 of 10 mailboxes passed Test & Enable/);
    expect(sim.s2s.crmCertificate?.thumbprint).not.toBe(oldThumbprint);
    expect(health()).toEqual({ ok: true });
    await page.screenshot({ path: '/tmp/setup-playground-cert-4-rotated.png', fullPage: true });
  }, 240_000);
});
