import { afterEach, describe, expect, it } from 'vitest';
import { s2sHealth } from '../../sim/s2s-state.ts';
import { cardOf, cardText, type CapturedCall } from '../support/fake-connector.ts';
import { APPROVER, OPERATOR, STRANGER, startFullStack, type FullStack } from '../support/full-stack.ts';

/**
 * Certificate rotation on real parts: activities into the real bot, signed jobs over real Redis,
 * the real agent running the PowerShell stand-in (against the CRM simulator's S2S state) and the
 * real Graph client over HTTPS to the Graph simulator, and the cards the bot sends back. The
 * simulated Test & Enable fails mailboxes when S2S is broken, so verification means something.
 */
let stack: FullStack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

function runIdOf(text: string): string {
  const match = /Run \| ([a-z0-9]{8,32})/.exec(text);
  if (!match?.[1]) throw new Error(`no run id in: ${text}`);
  return match[1];
}

const healthOf = (s: FullStack) => s2sHealth(s.sim.s2s, Date.now());
const registered = (s: FullStack) => s.sim.s2s.crmCertificate?.thumbprint;

/** Waits for a new message (a post that is not a reply to a command) whose card text matches. */
async function waitForPost(s: FullStack, predicate: (text: string) => boolean, what: string): Promise<{ call: CapturedCall; text: string }> {
  let found: { call: CapturedCall; text: string } | undefined;
  await s.connector.waitFor(
    () => {
      for (const call of s.connector.posts()) {
        const text = cardText(cardOf(call));
        if (predicate(text)) {
          found = { call, text };
          return true;
        }
      }
      return false;
    },
    what,
    30_000,
  );
  if (!found) throw new Error(`no ${what}`);
  return found;
}

async function rotationPlan(s: FullStack, command = 'cert rotate') {
  const planning = await s.say(OPERATOR, command);
  expect(cardText(cardOf(planning))).toContain('Planning');
  const text = await s.waitForCard(planning.activityId, (t) => t.includes('Needs an approver other than') || t.includes('Cannot rotate'), 'the rotation plan card', 30_000);
  return { cardId: planning.activityId, text, runId: runIdOf(text) };
}

describe('certificate rotation, end to end', () => {
  it('the watch posts a rotation-due card; Start rotation, a second person approves, every step runs and mail still flows', async () => {
    stack = await startFullStack({ certs: true, sim: { mailboxCount: 80, certDaysLeft: 12 } });
    const s = stack;
    const oldThumbprint = registered(s);
    const newThumbprint = s.certificates?.good.thumbprint;
    expect(oldThumbprint).toMatch(/^[0-9A-F]{40}$/);

    // The watch: 12 days left crosses the 14-day threshold; one card, with Start rotation.
    const set = await s.say(OPERATOR, 'cert watch here');
    expect(cardText(cardOf(set))).toContain('Certificate expiry watch set');
    const due = await waitForPost(s, (t) => t.includes('rotation due'), 'the rotation-due card');
    expect(due.text).toContain(oldThumbprint);
    expect(due.text).toContain('14-day');
    const button = cardOf(due.call).actions?.find((a) => a.title === 'Start rotation');
    expect(button?.verb).toBe('cert.start-rotation');

    // Start rotation as the operator: the plan card appears in the thread.
    const postsBefore = s.connector.posts().length;
    const started = await s.click(OPERATOR, 'cert.start-rotation', String(button?.data['runId']), due.call.activityId);
    expect(started.status).toBe(200);
    await s.connector.waitFor(() => s.connector.posts().length > postsBefore, 'the planning card');
    const planning = s.connector.posts()[postsBefore];
    if (!planning) throw new Error('no planning card');
    const planText = await s.waitForCard(planning.activityId, (t) => t.includes('Needs an approver other than'), 'the plan card', 30_000);
    expect(planText).toContain(newThumbprint);
    expect(planText).toContain('would import on CRMAPP01, CRMAPP02');
    const runId = runIdOf(planText);

    // Two-person rule: the requester cannot approve; someone without rights neither; nothing changed.
    const own = await s.click(OPERATOR, 'run.approve', runId, planning.activityId);
    expect(JSON.stringify(own.body)).toMatch(/approver/i);
    const stranger = await s.click(STRANGER, 'run.approve', runId, planning.activityId);
    expect(JSON.stringify(stranger.body)).toMatch(/approver/i);
    expect(registered(s)).toBe(oldThumbprint);

    const approved = await s.click(APPROVER, 'run.approve', runId, planning.activityId);
    expect(approved.status).toBe(200);
    const final = await s.waitForCard(planning.activityId, (t) => t.includes('Rotated:'), 'the rotated card', 60_000);
    expect(final).toContain(`Approved by | ${APPROVER.name}`);
    const results = await waitForPost(s, (t) => t.includes(`Results: certificate rotation (run ${runId})`), 'the results card');
    expect(results.text).toMatch(/Succeeded \| 10/);

    // What the administrators would otherwise have checked by hand.
    expect(registered(s)).toBe(newThumbprint);
    for (const server of s.sim.s2s.servers) {
      const stored = newThumbprint ? server.store.get(newThumbprint) : undefined;
      expect(stored?.keySpec).toBe(1);
      expect(stored?.keyReaders).toContain('contoso\\crmasync');
    }
    expect(healthOf(s)).toEqual({ ok: true });
    // The old key credential is retired once the new certificate is proven (CERT_RETIRE_OLD=remove).
    expect(s.sim.s2s.servicePrincipal.keyCredentials).toHaveLength(1);
  }, 120_000);

  it('a broken rotation is caught by verification; the rollback needs another person and restores mail', async () => {
    stack = await startFullStack({ certs: true, sim: { mailboxCount: 80 } });
    const s = stack;
    const oldThumbprint = registered(s);
    // A GPO resets the key ACL: Grant reports success, the service account still cannot read the key.
    await fetch(`${s.sim.baseUrl}/_sim/s2s/breakage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyAccessNotApplied: true }) });

    const plan = await rotationPlan(s);
    await s.click(APPROVER, 'run.approve', plan.runId, plan.cardId);
    const halted = await s.waitForCard(plan.cardId, (t) => t.includes('Halted:'), 'the halted card', 60_000);
    expect(halted).toContain('did not pass Test & Enable');
    expect(halted).toMatch(/cannot read the certificate's private key/i);
    expect(halted).toContain('Retire the old key credential: skipped');
    expect(healthOf(s)).toMatchObject({ ok: false, reason: 'key-not-readable' });

    // The operator asks for the rollback: a new card, which the operator cannot approve.
    const before = s.connector.posts().length;
    const asked = await s.click(OPERATOR, 'cert.rollback', plan.runId, plan.cardId);
    expect(asked.status).toBe(200);
    await s.waitForCard(plan.cardId, (t) => t.includes('Rollback requested by'), 'the rotation card with the pending rollback');
    await s.connector.waitFor(() => s.connector.posts().slice(before).some((p) => cardText(cardOf(p)).includes('Roll back the S2S certificate')), 'the rollback card');
    const rollbackCard = s.connector.posts().slice(before).find((p) => cardText(cardOf(p)).includes('Roll back the S2S certificate'));
    if (!rollbackCard) throw new Error('no rollback card');
    const rollbackRunId = runIdOf(cardText(cardOf(rollbackCard)));
    const own = await s.click(OPERATOR, 'run.approve', rollbackRunId, rollbackCard.activityId);
    expect(JSON.stringify(own.body)).toMatch(/approver/i);
    // While the rollback waits for its approval, the rotation cannot be resumed.
    const resume = await s.click(APPROVER, 'cert.resume', plan.runId, plan.cardId);
    expect(JSON.stringify(resume.body)).not.toMatch(/Resumed by/);

    await s.click(APPROVER, 'run.approve', rollbackRunId, rollbackCard.activityId);
    await s.waitForCard(rollbackCard.activityId, (t) => t.includes('Rolled back:'), 'the rolled-back card', 60_000);
    expect(registered(s)).toBe(oldThumbprint);
    expect(healthOf(s)).toEqual({ ok: true });
  }, 120_000);

  it('a failed step halts the run with the fix; Resume finishes it without redoing the steps already done', async () => {
    stack = await startFullStack({ certs: true, sim: { mailboxCount: 80 } });
    const s = stack;
    const newThumbprint = s.certificates?.good.thumbprint ?? '';
    await fetch(`${s.sim.baseUrl}/_sim/s2s/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'Import-S2SCertificate@CRMAPP02', message: 'WinRM cannot complete the operation: the server CRMAPP02 is not reachable.', times: 1 }),
    });

    const plan = await rotationPlan(s);
    await s.click(APPROVER, 'run.approve', plan.runId, plan.cardId);
    const halted = await s.waitForCard(plan.cardId, (t) => t.includes('Halted: a step failed.'), 'the halted card', 60_000);
    expect(halted).toContain('Stopped at: Import into LocalMachine');
    expect(halted).toContain('CRMAPP02');
    // Nothing after the failed step ran: CRM still signs with the old certificate.
    expect(registered(s)).not.toBe(newThumbprint);
    const importedAt = s.sim.s2s.servers.find((x) => x.name === 'CRMAPP01')?.store.get(newThumbprint);
    expect(importedAt).toBeDefined();

    // Someone without rights cannot resume; an approver can.
    const refused = await s.click(STRANGER, 'cert.resume', plan.runId, plan.cardId);
    expect(JSON.stringify(refused.body)).toMatch(/approver/i);
    await s.click(APPROVER, 'cert.resume', plan.runId, plan.cardId);
    const final = await s.waitForCard(plan.cardId, (t) => t.includes('Rotated:'), 'the rotated card after resume', 60_000);
    expect(final).toContain('Attempt | 2');
    // Attempt 2 imported only where attempt 1 had not.
    expect(final).toContain('imported on CRMAPP02; already on CRMAPP01');
    expect(registered(s)).toBe(newThumbprint);
    expect(healthOf(s)).toEqual({ ok: true });
  }, 120_000);
});
