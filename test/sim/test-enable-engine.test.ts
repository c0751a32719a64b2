import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { seedDeployment } from '../../sim/seed-deployment.ts';
import { seededRandom } from '../../sim/seeded-random.ts';
import { mailboxesInCategory, type BadAddressKind, type MailboxRecord } from '../../sim/sim-state.ts';
import { TestEnableEngine } from '../../sim/test-enable-engine.ts';
import { rows, simClient, waitFor, type SimClient } from './sim-client.ts';

describe('Test & Enable engine (fake clock)', () => {
  function setup(delayMs: number) {
    let now = 1_000_000;
    const state = seedDeployment({ seed: 9, mailboxCount: 50, nowMs: now });
    const ids = seededRandom(1);
    const engine = new TestEnableEngine({
      getState: () => state,
      random: seededRandom(2),
      delayMs,
      logger: silentLogger(),
      newId: () => ids.guid(),
      now: () => now,
    });
    return { state, engine, advance: (ms: number) => (now += ms) };
  }

  it('runs a scheduled mailbox once, after the delay, however often it is scheduled', () => {
    const { state, engine, advance } = setup(1000);
    const m = [...state.mailboxes.values()][0];
    if (!m) throw new Error('seed');
    const count = m.testemailconfigurationretrycount;
    m.testemailconfigurationscheduled = true;
    expect(engine.schedule(m.mailboxid)).toBe(true);
    expect(engine.schedule(m.mailboxid)).toBe(false);
    expect(engine.pendingCount).toBe(1);
    advance(999);
    expect(engine.runDue()).toBe(0);
    expect(m.testemailconfigurationscheduled).toBe(true);
    advance(101 + 250); // delay + the largest jitter
    expect(engine.runDue()).toBe(1);
    expect(engine.runDue()).toBe(0);
    expect(m.testemailconfigurationscheduled).toBe(false);
    expect(m.testemailconfigurationretrycount).toBe(count + 1);
    expect(engine.pendingCount).toBe(0);
    engine.stop();
  });

  it('completes runs in due order and skips cancelled ones', () => {
    const { state, engine, advance } = setup(100);
    const [a, b, c] = [...state.mailboxes.values()];
    if (!a || !b || !c) throw new Error('seed');
    const bCount = b.testemailconfigurationretrycount;
    engine.schedule(a.mailboxid); // due 100..110 (jitter at most 10 % of the delay)
    advance(50);
    engine.schedule(b.mailboxid); // due 150..160
    engine.schedule(c.mailboxid);
    expect(engine.cancel(c.mailboxid)).toBe(true);
    advance(62);
    expect(engine.runDue()).toBe(1); // only a is due
    expect(a.testmailboxaccesscompletedon).not.toBeNull();
    expect(b.testemailconfigurationretrycount).toBe(bCount);
    advance(100);
    expect(engine.runDue()).toBe(1); // b; c was cancelled
    expect(engine.pendingCount).toBe(0);
    engine.stop();
  });
});

describe('Test & Enable over the Web API', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  let pool: MailboxRecord[];
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 600, seed: 21, testDelayMs: 40 });
    crm = simClient(sim);
    pool = mailboxesInCategory(sim.state, 'pending').filter(
      (m) => sim.state.principals.get(m._ownerid_value)?.hasApprovePrivilege && !sim.state.badAddresses.has((m.emailaddress ?? '').toLowerCase()),
    );
  });
  afterAll(async () => {
    await sim.close();
  });

  const take = (): MailboxRecord => {
    const m = pool.shift();
    if (!m) throw new Error('ran out of seeded mailboxes');
    return m;
  };

  async function serverNow(): Promise<string> {
    const response = await crm.get('WhoAmI');
    return new Date(response.headers.get('date') ?? '').toISOString().replace('.000Z', 'Z');
  }

  async function testAndWait(m: MailboxRecord): Promise<void> {
    const response = await crm.patch(`mailboxes(${m.mailboxid})`, { testemailconfigurationscheduled: true });
    expect(response.status).toBe(204);
    expect(m.testemailconfigurationscheduled).toBe(true);
    await waitFor(() => !m.testemailconfigurationscheduled, 5000, `the test of ${m.emailaddress ?? ''}`);
  }

  async function tracesFor(m: MailboxRecord, since: string): Promise<Array<Record<string, unknown>>> {
    const response = await crm.get('tracelogs', {
      $select: 'text,level,createdon,_regardingobjectid_value',
      $filter: `createdon ge ${since} and _regardingobjectid_value eq ${m.mailboxid}`,
    });
    return rows(response);
  }

  it('succeeds for an approved mailbox on the Exchange Online profile with SSS delivery', async () => {
    const t0 = await serverNow();
    const m = take();
    const count = m.testemailconfigurationretrycount;
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1 })).status).toBe(204);
    await testAndWait(m);
    expect(m).toMatchObject({
      incomingemailstatus: 1,
      outgoingemailstatus: 1,
      actstatus: 1,
      mailboxstatus: 1,
      enabledforincomingemail: true,
      enabledforoutgoingemail: true,
      enabledforact: true,
      testemailconfigurationretrycount: count + 1,
    });
    expect(Date.parse(m.testmailboxaccesscompletedon ?? '')).toBeGreaterThanOrEqual(Date.parse(t0));
    expect(m.testmailboxaccesscompletedon).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(await tracesFor(m, t0)).toEqual([]);
  });

  it('fails an unapproved mailbox with a "must be approved" trace record', async () => {
    const t0 = await serverNow();
    const m = take();
    await testAndWait(m);
    expect(m).toMatchObject({ incomingemailstatus: 2, outgoingemailstatus: 2, actstatus: 2, mailboxstatus: 2, enabledforincomingemail: false });
    const traces = await tracesFor(m, t0);
    expect(traces).toHaveLength(1);
    expect(traces[0]?.text).toContain('must be approved');
    expect(traces[0]?.text).toContain('requires approval');
    expect(traces[0]).toMatchObject({ _regardingobjectid_value: m.mailboxid, level: 3 });
  });

  it('fails a mailbox on a profile of the wrong type with "(401) Unauthorized"', async () => {
    const t0 = await serverNow();
    const m = take();
    const response = await crm.patch(`mailboxes(${m.mailboxid})`, {
      emailrouteraccessapproval: 1,
      'emailserverprofile@odata.bind': `/emailserverprofiles(${sim.state.profileIds.legacyPop3})`,
    });
    expect(response.status).toBe(204);
    await testAndWait(m);
    expect(m.mailboxstatus).toBe(2);
    const traces = await tracesFor(m, t0);
    expect(traces.map((t) => t.text)).toEqual([expect.stringContaining('(401) Unauthorized')]);
  });

  it('fails the seeded bad addresses with each documented cause', async () => {
    const expected: Record<BadAddressKind, string> = {
      unauthorized: '(401) Unauthorized',
      'location-unknown': 'mailbox location could not be determined',
      'insufficient-permissions': 'Crm.80048306',
    };
    const t0 = await serverNow();
    for (const [kind, text] of Object.entries(expected) as Array<[BadAddressKind, string]>) {
      const m = [...sim.state.mailboxes.values()].find(
        (x) =>
          x.statecode === 0 &&
          x.emailrouteraccessapproval !== 1 &&
          sim.state.badAddresses.get((x.emailaddress ?? '').toLowerCase()) === kind &&
          sim.state.principals.get(x._ownerid_value)?.hasApprovePrivilege,
      );
      if (!m) throw new Error(`no seeded pending mailbox with a ${kind} address`);
      expect((await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1 })).status).toBe(204);
      await testAndWait(m);
      expect(m.mailboxstatus, kind).toBe(2);
      const traces = await tracesFor(m, t0);
      expect(traces.map((t) => t.text), kind).toEqual([expect.stringContaining(text)]);
    }
  });

  it('does not test directions that are not on server-side sync', async () => {
    const m = mailboxesInCategory(sim.state, 'outlook-delivery').find((x) => x.testemailconfigurationretrycount === 0);
    if (!m) throw new Error('seed');
    await testAndWait(m);
    expect(m).toMatchObject({ incomingemailstatus: 0, outgoingemailstatus: 0, actstatus: 0, mailboxstatus: 0, enabledforincomingemail: false });
  });

  it('runs once when scheduled twice while pending', async () => {
    sim.configure({ testDelayMs: 300 });
    try {
      const m = take();
      const count = m.testemailconfigurationretrycount;
      expect((await crm.patch(`mailboxes(${m.mailboxid})`, { testemailconfigurationscheduled: true })).status).toBe(204);
      expect((await crm.patch(`mailboxes(${m.mailboxid})`, { testemailconfigurationscheduled: true })).status).toBe(204);
      expect(sim.engine.isPending(m.mailboxid)).toBe(true);
      await waitFor(() => !m.testemailconfigurationscheduled, 5000);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(m.testemailconfigurationretrycount).toBe(count + 1);
    } finally {
      sim.configure({ testDelayMs: 40 });
    }
  });

  it('is visible to the agent\'s polling filter: scheduled first, then completed since T0', async () => {
    sim.configure({ testDelayMs: 300 });
    try {
      const t0 = await serverNow();
      const picked = [take(), take(), take()];
      const filter = `testemailconfigurationscheduled eq true or testmailboxaccesscompletedon ge ${t0}`;
      const ids = new Set(picked.map((m) => m.mailboxid));
      const poll = async () =>
        rows(await crm.get('mailboxes', { $select: 'testemailconfigurationscheduled,testmailboxaccesscompletedon,mailboxstatus', $filter: filter })).filter((r) =>
          ids.has(String(r.mailboxid)),
        );
      for (const m of picked) await crm.patch(`mailboxes(${m.mailboxid})`, { testemailconfigurationscheduled: true });
      const during = await poll();
      expect(during).toHaveLength(3);
      expect(during.every((r) => r.testemailconfigurationscheduled === true)).toBe(true);
      await waitFor(() => picked.every((m) => !m.testemailconfigurationscheduled), 5000);
      const after = await poll();
      expect(after).toHaveLength(3);
      expect(after.every((r) => r.testemailconfigurationscheduled === false && r.mailboxstatus === 2)).toBe(true);
    } finally {
      sim.configure({ testDelayMs: 40 });
    }
  });
});

describe('Test & Enable at scale', () => {
  it('completes 5,000 scheduled mailboxes through one timer', async () => {
    const sim = await startCrmSimulator({ mailboxCount: 5000, seed: 1, testDelayMs: 100 });
    try {
      const all = [...sim.state.mailboxes.values()];
      const started = Date.now();
      for (const m of all) {
        m.testemailconfigurationscheduled = true;
        sim.engine.schedule(m.mailboxid);
      }
      expect(sim.engine.pendingCount).toBe(5000);
      await waitFor(() => sim.engine.pendingCount === 0, 10_000, 'all runs');
      expect(Date.now() - started).toBeLessThan(3000);
      expect(all.every((m) => !m.testemailconfigurationscheduled)).toBe(true);
      const total = [...sim.engine.completed.values()].reduce((a, b) => a + b, 0);
      expect(total).toBe(5000);
      expect(sim.engine.completed.get('success')).toBeGreaterThan(500);
      expect(sim.engine.completed.get('not-approved')).toBeGreaterThan(2000);
    } finally {
      await sim.close();
    }
  });
});
