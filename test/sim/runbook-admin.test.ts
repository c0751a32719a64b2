import { PREPOPULATED_APP_IDS } from '../../sim/exchange-online.ts';
import { rootCertificates } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { startGraphSimulator, type GraphSimulator } from '../../sim/graph-simulator.ts';
import { DEFAULT_GRAPH_CLIENT_SECRET, SIM_GRAPH_PERMISSIONS } from '../../sim/s2s-seed.ts';
import { errorOf, rows, simClient, waitFor, type SimClient } from './sim-client.ts';

const CRLF = '\r\n';

/** One change set of JSON PATCHes (written by hand, independent of sim/multipart.ts). */
function changeSetBody(patches: Array<{ url: string; body: unknown }>, boundary: string): string {
  const cs = 'changeset_1';
  let out = `--${boundary}${CRLF}Content-Type: multipart/mixed; boundary=${cs}${CRLF}${CRLF}`;
  patches.forEach((p, i) => {
    out += `--${cs}${CRLF}Content-Type: application/http${CRLF}Content-Transfer-Encoding: binary${CRLF}Content-ID: ${i + 1}${CRLF}${CRLF}`;
    out += `PATCH ${p.url} HTTP/1.1${CRLF}Content-Type: application/json;type=entry${CRLF}If-Match: *${CRLF}${CRLF}${JSON.stringify(p.body)}${CRLF}`;
  });
  return `${out}--${cs}--${CRLF}--${boundary}--${CRLF}`;
}

interface SimStateReply {
  scenario: string;
  knobs: { localAdministrator: boolean; callerRoles: string[]; graphPermissions: string[]; ownersWithoutPrivileges: string[] };
  counters: { crmWrites: Record<string, number>; changes: Record<string, number> };
}

describe('runbook failure injection, knobs and counters over HTTP', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  const admin = async (path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const response = await fetch(`${sim.baseUrl}/_sim/${path}`, body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, json: (await response.json()) };
  };
  const simState = async (): Promise<SimStateReply> => (await admin('state')).json as SimStateReply;
  const mailboxes = () => [...sim.state.mailboxes.values()];

  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 20, seed: 21, scenario: 'fresh', testDelayMs: 20 });
    crm = simClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });
  afterEach(async () => {
    await admin('reset', {});
  });

  it('a crm:PATCH organizations fault answers a CRM error (default 400 / 0x80040220) and writes nothing; then the write goes through and is counted', async () => {
    const org = sim.state.organization;
    expect((await admin('s2s/faults', { target: 'crm:PATCH organizations', message: 'SQL timeout writing the organization.' })).status).toBe(200);
    const refused = await crm.patch(`organizations(${org.organizationid})`, { emailconnectionchannel: 0 });
    expect(refused.status).toBe(400);
    expect(errorOf(refused)).toEqual({ code: '0x80040220', message: 'SQL timeout writing the organization.' });
    expect(sim.state.organization.emailconnectionchannel).toBe(1);
    expect((await simState()).counters.crmWrites).toEqual({});
    expect((await crm.patch(`organizations(${org.organizationid})`, { emailconnectionchannel: 0 })).status).toBe(204);
    expect(sim.state.organization.emailconnectionchannel).toBe(0);
    expect((await simState()).counters.crmWrites).toEqual({ 'PATCH organizations': 1 });
  });

  it('a crm:POST emailserverprofiles fault takes its status and code', async () => {
    await admin('s2s/faults', { target: 'crm:POST emailserverprofiles', message: 'Principal user is missing prvCreateEmailServerProfile privilege.', status: 403, code: '0x80040220' });
    const before = sim.state.profiles.size;
    const refused = await crm.send('POST', 'emailserverprofiles', JSON.stringify({ name: 'Exchange Online', servertype: 3 }), { 'Content-Type': 'application/json' });
    expect(refused.status).toBe(403);
    expect(errorOf(refused).message).toContain('prvCreateEmailServerProfile');
    expect(sim.state.profiles.size).toBe(before);
    const created = await crm.send('POST', 'emailserverprofiles', JSON.stringify({ name: 'Exchange Online', servertype: 3 }), { 'Content-Type': 'application/json' });
    expect(created.status).toBe(204);
    expect((await simState()).counters.crmWrites).toEqual({ 'POST emailserverprofiles': 1 });
  });

  it('a crm:PATCH mailboxes fault inside a $batch change set rolls the change set back; the counters count committed rows only', async () => {
    const [a, b] = mailboxes();
    if (!a || !b) throw new Error('seed');
    const patches = [a, b].map((m) => ({ url: `mailboxes(${m.mailboxid})`, body: { incomingemaildeliverymethod: 2 } }));
    await admin('s2s/faults', { target: 'crm:PATCH mailboxes', message: 'Generic SQL error.', status: 500, code: '0x80044150', times: 1 });
    // The first part takes the fault: the change set fails as a whole.
    const failed = await crm.send('POST', '$batch', changeSetBody(patches, 'batch_x'), { 'Content-Type': 'multipart/mixed; boundary=batch_x' });
    expect(failed.status).toBe(200);
    expect(failed.text).toMatch(/HTTP\/1\.1 500 [^\r\n]*\r\n[\s\S]*0x80044150/);
    expect([a.incomingemaildeliverymethod, b.incomingemaildeliverymethod]).toEqual([0, 0]);
    expect((await simState()).counters.crmWrites).toEqual({});
    const done = await crm.send('POST', '$batch', changeSetBody(patches, 'batch_y'), { 'Content-Type': 'multipart/mixed; boundary=batch_y' });
    expect(done.text).not.toMatch(/HTTP\/1\.1 [45]\d\d/);
    expect([a.incomingemaildeliverymethod, b.incomingemaildeliverymethod]).toEqual([2, 2]);
    expect((await simState()).counters.crmWrites).toEqual({ 'PATCH mailboxes': 2 });
  });

  it('hangMs: the write is made at once and the answer (direct or $batch) comes only after hangMs', async () => {
    const org = sim.state.organization;
    await admin('s2s/faults', { target: 'crm:PATCH organizations', hangMs: 600 });
    let started = Date.now();
    const pending = crm.patch(`organizations(${org.organizationid})`, { emailconnectionchannel: 0 });
    await waitFor(() => sim.state.organization.emailconnectionchannel === 0, 2000, 'the hung write to take effect');
    expect(Date.now() - started).toBeLessThan(500);
    expect((await pending).status).toBe(204);
    expect(Date.now() - started).toBeGreaterThanOrEqual(590);

    const [m] = mailboxes();
    if (!m) throw new Error('seed');
    await admin('s2s/faults', { target: 'crm:PATCH mailboxes', hangMs: 500 });
    started = Date.now();
    const batch = await crm.send('POST', '$batch', changeSetBody([{ url: `mailboxes(${m.mailboxid})`, body: { actdeliverymethod: 1 } }], 'batch_h'), { 'Content-Type': 'multipart/mixed; boundary=batch_h' });
    expect(batch.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(490);
    expect(m.actdeliverymethod).toBe(1);
  });

  it('hangMs on a script: the PowerShell endpoint makes the change, then answers late', async () => {
    await admin('s2s/faults', { target: 'Set-S2STenantId', hangMs: 400 });
    const started = Date.now();
    const response = await fetch(`${sim.baseUrl}/_sim/powershell`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ script: 'Set-S2STenantId', params: { OrganizationName: 'contoso', TenantId: sim.s2s.tenant.id } }),
    });
    expect(response.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(sim.s2s.organization.s2sTenantId).toBe(sim.s2s.tenant.id);
    expect((await simState()).counters.changes).toEqual({ 'Set-S2STenantId': 1 });
  });

  it('refuses a fault without message or hangMs, and a bad code', async () => {
    expect((await admin('s2s/faults', { target: 'crm:PATCH mailboxes' })).status).toBe(400);
    expect((await admin('s2s/faults', { target: 'crm:PATCH mailboxes', message: 'x', code: 'oops' })).status).toBe(400);
  });

  it('systemuserroles_association: the caller is System Administrator; the callerRoles knob changes it; other users have Salesperson', async () => {
    const path = `systemusers(${sim.state.callerUserId})/systemuserroles_association`;
    const roles = await crm.get(path, { $select: 'name,roleid' });
    expect(roles.status).toBe(200);
    expect(rows(roles)).toEqual([{ name: 'System Administrator', roleid: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown }]);
    expect((await admin('knobs', { callerRoles: ['Salesperson', 'Delegate'] })).status).toBe(200);
    expect(rows(await crm.get(path, { $select: 'name' }))).toEqual([{ name: 'Salesperson' }, { name: 'Delegate' }]);
    const owner = mailboxes().find((m) => sim.state.principals.get(m._regardingobjectid_value)?.logicalName === 'systemuser');
    if (!owner) throw new Error('seed');
    expect(rows(await crm.get(`systemusers(${owner._regardingobjectid_value})/systemuserroles_association`, { $select: 'name' }))).toEqual([{ name: 'Salesperson' }]);
    expect((await crm.get(`systemusers(${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)})/systemuserroles_association`)).status).toBe(404);
    expect((await crm.get(path, { $select: 'fullname' })).status).toBe(400);
  });

  it('knobs: local administrator (Test-LocalAdministrator), GET shows them, reset restores the seed', async () => {
    const runScript = async (): Promise<unknown> => {
      const response = await fetch(`${sim.baseUrl}/_sim/powershell`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ script: 'Test-LocalAdministrator', params: {} }) });
      return ((await response.json()) as { output: unknown }).output;
    };
    expect(await runScript()).toEqual({ isAdministrator: true, user: 'CONTOSO\\crmsetup' });
    await admin('knobs', { localAdministrator: false, graphPermissions: ['Organization.Read.All'] });
    expect(await runScript()).toEqual({ isAdministrator: false, user: 'CONTOSO\\crmsetup' });
    expect((await admin('knobs')).json).toMatchObject({ localAdministrator: false, graphPermissions: ['Organization.Read.All'], callerRoles: ['System Administrator'] });
    expect((await admin('knobs', { nonsense: true })).status).toBe(400);
    // The Exchange Online knobs change the tenant's EWS policy.
    await admin('knobs', { ewsEnabled: true, ewsAllowedAppIds: ['00000007-0000-0000-C000-000000000000'], mailboxesEwsDisabled: ['Ann@Contoso.com'] });
    expect(sim.s2s.exchange).toMatchObject({ ewsEnabled: true, ewsAllowedAppIds: ['00000007-0000-0000-c000-000000000000'] });
    expect([...sim.s2s.exchange.mailboxEwsDisabled]).toEqual(['ann@contoso.com']);
    await admin('reset', {});
    // The fresh scenario's tenant never allowed EWS for CRM: EwsEnabled false, a pre-populated list without CRM.
    expect((await simState()).knobs).toEqual({
      localAdministrator: true,
      callerRoles: ['System Administrator'],
      graphPermissions: [...SIM_GRAPH_PERMISSIONS],
      ownersWithoutPrivileges: [],
      actInAnotherOrganization: [],
      ewsEnabled: false,
      ewsAllowedAppIds: [...PREPOPULATED_APP_IDS],
      mailboxesEwsDisabled: [],
    });
  });

  it('ownersWithoutPrivileges: those mailboxes fail Test & Enable with Crm.80048306, the others pass once everything is configured', async () => {
    const s2s = sim.s2s;
    // Everything S2S as a finished runbook leaves it: borrow a configured seed's S2S side.
    const { seedS2S } = await import('../../sim/s2s-seed.ts');
    const healthy = seedS2S({ orgName: 'contoso', organizationId: s2s.organization.id });
    Object.assign(s2s, { ...healthy, faults: s2s.faults, changeCounts: s2s.changeCounts });
    const profile = await crm.send('POST', 'emailserverprofiles', JSON.stringify({ name: 'Exchange Online', servertype: 3 }), { 'Content-Type': 'application/json', Prefer: 'return=representation' });
    const profileId = String((profile.json as Record<string, unknown>)['emailserverprofileid']);
    const [bad, good] = mailboxes();
    if (!bad || !good) throw new Error('seed');
    await admin('knobs', { ownersWithoutPrivileges: [String(bad.emailaddress).toUpperCase()] });
    for (const m of [bad, good]) {
      const response = await crm.patch(`mailboxes(${m.mailboxid})`, {
        'emailserverprofile@odata.bind': `/emailserverprofiles(${profileId})`,
        incomingemaildeliverymethod: 2, outgoingemaildeliverymethod: 2, actdeliverymethod: 1, emailrouteraccessapproval: 1, testemailconfigurationscheduled: true,
      });
      expect(response.status).toBe(204);
    }
    await waitFor(() => bad.mailboxstatus !== 0 && good.mailboxstatus !== 0, 5000, 'Test & Enable');
    expect(good).toMatchObject({ mailboxstatus: 1, incomingemailstatus: 1, outgoingemailstatus: 1, actstatus: 1 });
    expect(bad.mailboxstatus).toBe(2);
    const traces = [...sim.state.tracelogs.values()].filter((t) => t._regardingobjectid_value === bad.mailboxid);
    expect(traces.map((t) => t.text).join(' ')).toContain('Crm.80048306');
    expect((await simState()).counters.crmWrites).toEqual({ 'POST emailserverprofiles': 1, 'PATCH mailboxes': 2 });
  });
});

describe('Graph: JWT-shaped tokens with the granted roles, 403 without a permission', () => {
  let sim: CrmSimulator;
  let graph: GraphSimulator;
  let agent: Agent;
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 5, scenario: 'fresh' });
    graph = await startGraphSimulator({ s2s: sim.s2s });
    agent = new Agent({ connect: { ca: [...rootCertificates, graph.caPem] } });
  });
  afterAll(async () => {
    await agent.close();
    await graph.close();
    await sim.close();
  });

  const token = async (): Promise<string> => {
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: sim.s2s.app.clientId, client_secret: DEFAULT_GRAPH_CLIENT_SECRET, scope: `${graph.graphUrl}/.default` });
    const response = await undiciFetch(`${graph.loginUrl}/${sim.s2s.tenant.id}/oauth2/v2.0/token`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString(), dispatcher: agent });
    expect(response.status).toBe(200);
    return ((await response.json()) as { access_token: string }).access_token;
  };
  const claims = (jwt: string): Record<string, unknown> => {
    const parts = jwt.split('.');
    expect(parts).toHaveLength(3);
    return JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  };
  const getOrganization = async (jwt: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await undiciFetch(`${graph.graphUrl}/v1.0/organization`, { headers: { Authorization: `Bearer ${jwt}` }, dispatcher: agent });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it('issues header.payload.signature tokens with aud, iss, tid, appid, roles, exp; the bearer check still works', async () => {
    const jwt = await token();
    const payload = claims(jwt);
    expect(payload).toMatchObject({ aud: graph.graphUrl, iss: `https://sts.windows.net/${sim.s2s.tenant.id}/`, tid: sim.s2s.tenant.id, appid: sim.s2s.app.clientId, idtyp: 'app', roles: [...SIM_GRAPH_PERMISSIONS] });
    expect(Number(payload['exp']) * 1000).toBeGreaterThan(Date.now() + 3_000_000);
    expect(JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString('utf8'))).toMatchObject({ typ: 'JWT', alg: 'RS256' });
    expect((await getOrganization(jwt)).status).toBe(200);
    // A token the simulator did not issue (same claims, other signature) is refused.
    const forged = `${jwt.split('.').slice(0, 2).join('.')}.${Buffer.from('forged').toString('base64url')}`;
    expect((await getOrganization(forged)).status).toBe(401);
  });

  it('the graphPermissions knob: the token has only the granted roles (none: no roles claim) and Graph answers 403', async () => {
    sim.setKnobs({ graphPermissions: ['Application.ReadWrite.All'] });
    const jwt = await token();
    expect(claims(jwt)['roles']).toEqual(['Application.ReadWrite.All']);
    const denied = await getOrganization(jwt);
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ error: { code: 'Authorization_RequestDenied' } });
    sim.setKnobs({ graphPermissions: [] });
    expect(claims(await token())).not.toHaveProperty('roles');
    sim.setKnobs({ graphPermissions: [...SIM_GRAPH_PERMISSIONS] });
  });

  it("a '403' fault on graph:get-organization answers Graph's Authorization_RequestDenied once", async () => {
    const jwt = await token();
    sim.configureS2S({ faults: [{ target: 'graph:get-organization', message: '403', times: 1 }] });
    const denied = await getOrganization(jwt);
    expect(denied).toMatchObject({ status: 403, body: { error: { code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' } } });
    expect((await getOrganization(jwt)).status).toBe(200);
  });
});

describe('a held-back answer and close()', () => {
  it('close() does not wait for a hangMs answer: the change stays made, the request is cut', async () => {
    const sim = await startCrmSimulator({ mailboxCount: 3, scenario: 'fresh' });
    const crm = simClient(sim);
    sim.configureS2S({ faults: [{ target: 'crm:PATCH organizations', times: 1, hangMs: 600_000 }] });
    const pending = crm.patch(`organizations(${sim.state.organization.organizationid})`, { emailconnectionchannel: 0 }).then(
      (r) => r.status,
      () => 'cut',
    );
    await waitFor(() => sim.state.organization.emailconnectionchannel === 0, 2000, 'the write');
    const started = Date.now();
    await sim.close();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await pending).toBe('cut');
  });
});
