import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import type { S2SSummary } from '../../sim/sim-admin.ts';
import { mailboxesInCategory, type MailboxRecord } from '../../sim/sim-state.ts';
import { s2sHealth } from '../../sim/s2s-state.ts';
import { rows, simClient, waitFor, type SimClient } from './sim-client.ts';

describe('S2S in the CRM simulator: admin routes, reset, and Test & Enable', () => {
  let sim: CrmSimulator;
  let crm: SimClient;

  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 200, seed: 33, testDelayMs: 30 });
    crm = simClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });
  beforeEach(() => {
    sim.reset();
  });

  const admin = async (method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const response = await fetch(`${sim.baseUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }),
    });
    return { status: response.status, json: await response.json() };
  };
  const summary = async (): Promise<S2SSummary> => (await admin('GET', '/_sim/s2s')).json as S2SSummary;

  /** Approved mailboxes on the Exchange Online profile whose address works: they succeed while S2S is healthy. */
  const goodMailboxes = (count: number): MailboxRecord[] => {
    const list = mailboxesInCategory(sim.state, 'approved-success').filter((m) => !sim.state.badAddresses.has((m.emailaddress ?? '').toLowerCase()));
    if (list.length < count) throw new Error('not enough seeded mailboxes');
    return list.slice(0, count);
  };

  async function testAndWait(mailboxes: MailboxRecord[]): Promise<void> {
    for (const m of mailboxes) expect((await crm.patch(`mailboxes(${m.mailboxid})`, { testemailconfigurationscheduled: true })).status).toBe(204);
    await waitFor(() => mailboxes.every((m) => !m.testemailconfigurationscheduled), 5000, 'the tests');
  }

  async function tracesOf(m: MailboxRecord): Promise<string[]> {
    const response = await crm.get('tracelogs', { $select: 'text,createdon', $filter: `_regardingobjectid_value eq ${m.mailboxid}`, $orderby: 'createdon desc' });
    return rows(response).map((r) => String(r.text));
  }

  it('GET /_sim/s2s summarizes the seeded, healthy S2S side', async () => {
    const s = await summary();
    const thumbprint = sim.s2s.crmCertificate?.thumbprint;
    expect(thumbprint).toMatch(/^[0-9A-F]{40}$/);
    expect(s.health).toEqual({ ok: true });
    expect(s.crmCertificate?.thumbprint).toBe(thumbprint);
    expect(s.servers.map((x) => x.name)).toEqual(['CRMAPP01', 'CRMAPP02']);
    for (const server of s.servers) {
      expect(server.store).toEqual([expect.objectContaining({ thumbprint, keySpec: 1, hasPrivateKey: true, readers: ['contoso\\crmasync'] })]);
      expect(server.services.map((x) => `${x.name}:${x.status}`)).toEqual(['MSCRMAsyncService:Running', 'MSCRMAsyncService$maintenance:Running']);
    }
    expect(s.servicePrincipal.keyCredentials.map((k) => k.thumbprint)).toEqual([thumbprint]);
    expect(s.serverSettings.principalId).toBe('00000001-0000-0000-c000-000000000000');
    expect(JSON.stringify(s)).not.toContain('sim-client-secret');
  });

  it('POST /_sim/s2s/faults and /_sim/s2s/breakage change the shared state; bad bodies answer 400', async () => {
    const added = await admin('POST', '/_sim/s2s/faults', { target: 'Import-S2SCertificate@CRMAPP02', message: 'Access is denied', times: 2 });
    expect(added.status).toBe(200);
    expect(sim.s2s.faults).toEqual([{ target: 'Import-S2SCertificate@CRMAPP02', message: 'Access is denied', times: 2 }]);
    await admin('POST', '/_sim/s2s/faults', [{ target: 'graph:token', message: '503' }]);
    expect(sim.s2s.faults[1]).toEqual({ target: 'graph:token', message: '503', times: 1 });

    const breakage = await admin('POST', '/_sim/s2s/breakage', { keyCredentialDropped: true });
    expect(breakage).toEqual({ status: 200, json: { keyAccessNotApplied: false, keyCredentialDropped: true } });
    expect(sim.s2s.breakage.keyCredentialDropped).toBe(true);

    expect((await admin('POST', '/_sim/s2s/faults', { target: 'x', message: 'y', times: 0 })).status).toBe(400);
    expect((await admin('POST', '/_sim/s2s/breakage', { everything: true })).status).toBe(400);
    expect((await admin('POST', '/_sim/s2s/breakage', '{not json')).status).toBe(400);
    expect((await admin('POST', '/_sim/powershell', { script: 'Get-S2SCertificate' })).status).toBe(400);
  });

  it('POST /_sim/powershell runs a script: 200 with the output, 422 with the script\'s error', async () => {
    const ok = await admin('POST', '/_sim/powershell', { script: 'Get-S2SServerSettings', params: {}, files: {}, password: null });
    expect(ok).toEqual({ status: 200, json: { output: { principalId: '00000001-0000-0000-c000-000000000000', metadataUrl: 'https://accounts.accesscontrol.windows.net/metadata/json/1' } } });
    const failed = await admin('POST', '/_sim/powershell', { script: 'Restart-CrmAsyncServices', params: { ComputerName: 'NOPE' }, files: {} });
    expect(failed.status).toBe(422);
    expect(JSON.stringify(failed.json)).toContain('Connecting to remote server NOPE failed');
  });

  it('reset reseeds the S2S state in place (the Graph simulator keeps its reference)', async () => {
    const shared = sim.s2s;
    const thumbprint = shared.crmCertificate?.thumbprint;
    shared.crmCertificate = null;
    shared.faults.push({ target: 'graph:token', message: '500', times: 1 });
    shared.breakage.keyAccessNotApplied = true;
    expect((await summary()).health).toMatchObject({ ok: false, reason: 'not-registered' });
    expect((await admin('POST', '/_sim/reset')).status).toBe(200);
    expect(sim.s2s).toBe(shared);
    expect(sim.s2s.crmCertificate?.thumbprint).toBe(thumbprint);
    expect(shared.faults).toEqual([]);
    expect(shared.breakage).toEqual({ keyAccessNotApplied: false, keyCredentialDropped: false });
    expect((await summary()).health).toEqual({ ok: true });
  });

  it('configureS2S adds faults and switches breakage, like the admin routes', () => {
    sim.configureS2S({ faults: [{ target: 'Restart-CrmAsyncServices', message: 'busy', times: 3 }], breakage: { keyAccessNotApplied: true } });
    expect(sim.s2s.faults).toEqual([{ target: 'Restart-CrmAsyncServices', message: 'busy', times: 3 }]);
    expect(sim.s2s.breakage).toEqual({ keyAccessNotApplied: true, keyCredentialDropped: false });
  });

  it('Test & Enable succeeds while S2S is healthy', async () => {
    const mailboxes = goodMailboxes(3);
    await testAndWait(mailboxes);
    for (const m of mailboxes) expect(m).toMatchObject({ incomingemailstatus: 1, outgoingemailstatus: 1, mailboxstatus: 1 });
  });

  const breakages: Array<{ name: string; reason: string; text: RegExp; breakIt: (sim: CrmSimulator) => void }> = [
    {
      name: 'the service account cannot read the key',
      reason: 'key-not-readable',
      text: /Keyset does not exist: CONTOSO\\crmasync cannot read the private key on CRMAPP02/,
      breakIt: (s) => {
        const cert = s.s2s.crmCertificate;
        const stored = cert ? s.s2s.servers[1]?.store.get(cert.thumbprint) : undefined;
        if (!stored) throw new Error('seed');
        stored.keyReaders = [];
      },
    },
    {
      name: 'the services were not restarted after the last change',
      reason: 'services-not-restarted',
      text: /MSCRMAsyncService on CRMAPP01 still uses the previous S2S configuration/,
      breakIt: (s) => {
        s.s2s.lastS2SChangeAt = Date.now();
      },
    },
    {
      name: 'the key credential is missing in Entra',
      reason: 'no-key-credential',
      text: /401 Unauthorized.*not a key credential of the Microsoft Dynamics CRM service principal/,
      breakIt: (s) => {
        s.s2s.servicePrincipal.keyCredentials = [];
      },
    },
  ];

  it.each(breakages)('Test & Enable fails every tested mailbox with the S2S trace text when $name', async ({ reason, text, breakIt }) => {
    breakIt(sim);
    const health = s2sHealth(sim.s2s, Date.now());
    expect(health).toMatchObject({ ok: false, reason });
    if (health.ok) throw new Error('unreachable');
    expect(health.traceText).toMatch(text);

    const mailboxes = goodMailboxes(3);
    await testAndWait(mailboxes);
    for (const m of mailboxes) {
      expect(m).toMatchObject({ incomingemailstatus: 2, outgoingemailstatus: 2, actstatus: 2, mailboxstatus: 2, enabledforincomingemail: false, enabledforoutgoingemail: false });
      expect((await tracesOf(m))[0]).toBe(health.traceText);
    }
    expect(sim.engine.completed.get('s2s-auth')).toBe(3);
    expect((await summary()).health).toEqual(health);
  });

  it('a mailbox that fails before connecting keeps its own cause (not approved)', async () => {
    sim.s2s.servicePrincipal.keyCredentials = [];
    const pending = mailboxesInCategory(sim.state, 'pending').find((m) => sim.state.principals.get(m._ownerid_value)?.hasApprovePrivilege);
    if (!pending) throw new Error('seed');
    await testAndWait([pending]);
    expect(pending.incomingemailstatus).toBe(2);
    expect((await tracesOf(pending))[0]).toContain('requires approval');
  });
});
