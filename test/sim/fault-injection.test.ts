import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { errorOf, simClient, type SimClient } from './sim-client.ts';

describe('fault injection and the /_sim/ admin surface', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  let admin: string;
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 100, seed: 4 });
    crm = simClient(sim);
    admin = new URL('/_sim/', sim.orgUrl).toString();
  });
  afterAll(async () => {
    await sim.close();
  });

  it('adds latencyMs to every API request but not to admin requests', async () => {
    sim.configure({ latencyMs: 120 });
    try {
      let started = Date.now();
      expect((await crm.get('WhoAmI')).status).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(115);
      started = Date.now();
      expect((await fetch(`${admin}state/summary`)).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(100);
    } finally {
      sim.configure({ latencyMs: 0 });
    }
  });

  it('fails exactly the next n API requests with 503 and a CRM error body', async () => {
    sim.configure({ failNext: 2 });
    const first = await crm.get('WhoAmI');
    expect(first.status).toBe(503);
    expect(errorOf(first).code).toMatch(/^0x8004/);
    expect((await fetch(`${admin}state/summary`)).status).toBe(200); // admin is never failed nor counted
    expect((await crm.get('WhoAmI')).status).toBe(503);
    expect((await crm.get('WhoAmI')).status).toBe(200);
    expect(sim.faults.failNext).toBe(0);
  });

  it('does not apply a write that was answered 503', async () => {
    const m = [...sim.state.mailboxes.values()].find((x) => x.emailrouteraccessapproval === 0);
    if (!m) throw new Error('seed');
    sim.configure({ failNext: 1 });
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 2 })).status).toBe(503);
    expect(m.emailrouteraccessapproval).toBe(0);
  });

  it('fails about failRate of the requests, deterministically for a seed', async () => {
    const run = async (): Promise<number[]> => {
      const s = await startCrmSimulator({ mailboxCount: 10, seed: 99, failRate: 0.3 });
      const c = simClient(s);
      const statuses: number[] = [];
      for (let i = 0; i < 200; i++) statuses.push((await c.get('WhoAmI')).status);
      await s.close();
      return statuses;
    };
    const a = await run();
    const failed = a.filter((s) => s === 503).length;
    expect(failed).toBeGreaterThan(35);
    expect(failed).toBeLessThan(85);
    expect(a.every((s) => s === 200 || s === 503)).toBe(true);
    expect(await run()).toEqual(a);
  });

  it('counts API requests, batch parts and methods, and resets the counts', async () => {
    sim.resetStats();
    await crm.get('WhoAmI');
    await crm.get('WhoAmI');
    await crm.send('PATCH', 'mailboxes', '{}');
    expect(sim.stats).toEqual({ requests: 3, batchParts: 0, byMethod: { GET: 2, PATCH: 1 } });
    sim.resetStats();
    expect(sim.stats.requests).toBe(0);
  });

  it('sets faults through POST /_sim/faults and validates them', async () => {
    const ok = await fetch(`${admin}faults`, { method: 'POST', body: JSON.stringify({ failNext: 1, testDelayMs: 10 }) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ failNext: 1, testDelayMs: 10, latencyMs: 0 });
    expect(sim.engine.delayMs).toBe(10);
    expect((await crm.get('WhoAmI')).status).toBe(503);
    const bad = await fetch(`${admin}faults`, { method: 'POST', body: JSON.stringify({ failRate: 2 }) });
    expect(bad.status).toBe(400);
    const unknown = await fetch(`${admin}faults`, { method: 'POST', body: JSON.stringify({ explode: true }) });
    expect(unknown.status).toBe(400);
    expect((await fetch(`${admin}nothing`)).status).toBe(404);
  });

  it('summarises the state by approval and test status, and resets it', async () => {
    const response = await fetch(`${admin}state/summary`);
    const summary = (await response.json()) as { mailboxes: number; byApproval: Record<string, number>; byTestStatus: { mailbox: Record<string, number> } };
    expect(summary.mailboxes).toBe(100);
    expect(Object.values(summary.byApproval).reduce((a, b) => a + b, 0)).toBe(100);
    expect(Object.keys(summary.byApproval).sort()).toEqual(['Approved', 'Empty', 'Pending Approval', 'Rejected']);
    expect(Object.values(summary.byTestStatus.mailbox).reduce((a, b) => a + b, 0)).toBe(100);

    const m = [...sim.state.mailboxes.values()][0];
    if (!m) throw new Error('seed');
    const id = m.mailboxid;
    m.emailrouteraccessapproval = 3;
    sim.configure({ latencyMs: 5 });
    const reset = await fetch(`${admin}reset`, { method: 'POST' });
    expect(reset.status).toBe(200);
    expect(sim.state.mailboxes.get(id)?.emailrouteraccessapproval).not.toBe(3);
    expect(sim.faults.latencyMs).toBe(0);
    expect(sim.stats.requests).toBe(0);
  });
});
