import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { mailboxesInCategory, mailboxesWithoutApprovePrivilege, type MailboxRecord } from '../../sim/sim-state.ts';
import { errorOf, simClient, type SimClient } from './sim-client.ts';

describe('simulated Web API: PATCH and POST', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  let pending: MailboxRecord[];
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 300, seed: 3, testDelayMs: 60_000 });
    crm = simClient(sim);
    pending = mailboxesInCategory(sim.state, 'pending').filter((m) => sim.state.principals.get(m._ownerid_value)?.hasApprovePrivilege);
  });
  afterAll(async () => {
    await sim.close();
  });

  const take = (): MailboxRecord => {
    const m = pending.shift();
    if (!m) throw new Error('ran out of seeded pending mailboxes');
    return m;
  };

  it('approves a mailbox: 204 with OData-EntityId, state and version updated', async () => {
    const m = take();
    const version = m.versionnumber;
    const response = await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1 });
    expect(response.status).toBe(204);
    expect(response.text).toBe('');
    expect(response.headers.get('odata-entityid')).toBe(`${crm.root}mailboxes(${m.mailboxid})`);
    expect(sim.state.mailboxes.get(m.mailboxid)?.emailrouteraccessapproval).toBe(1);
    expect(m.versionnumber).toBe(version + 1);
    const read = await crm.get(`mailboxes(${m.mailboxid})`, { $select: 'emailrouteraccessapproval' });
    expect(read.json).toMatchObject({ '@odata.etag': `W/"${version + 1}"`, emailrouteraccessapproval: 1 });
  });

  it('writes the delivery methods, the profile bind and the other writable attributes', async () => {
    const m = take();
    const response = await crm.patch(`mailboxes(${m.mailboxid})`, {
      incomingemaildeliverymethod: 2,
      outgoingemaildeliverymethod: 2,
      actdeliverymethod: 1,
      'emailserverprofile@odata.bind': `/emailserverprofiles(${sim.state.profileIds.legacyPop3})`,
      processemailreceivedafter: '2026-11-01T08:30:00.000Z',
      orgmarkedasprimaryforexchangesync: true,
      '@odata.type': 'Microsoft.Dynamics.CRM.mailbox',
    });
    expect(response.status).toBe(204);
    expect(m).toMatchObject({
      incomingemaildeliverymethod: 2,
      outgoingemaildeliverymethod: 2,
      actdeliverymethod: 1,
      _emailserverprofile_value: sim.state.profileIds.legacyPop3,
      processemailreceivedafter: '2026-11-01T08:30:00Z',
      orgmarkedasprimaryforexchangesync: true,
    });
    const absolute = await crm.patch(`mailboxes(${m.mailboxid})`, {
      'emailserverprofile@odata.bind': `${crm.root}emailserverprofiles(${(sim.state.profileIds.exchangeOnline ?? '').toUpperCase()})`,
    });
    expect(absolute.status).toBe(204);
    expect(m._emailserverprofile_value).toBe(sim.state.profileIds.exchangeOnline);
  });

  it('honours If-Match: 404 for a missing id (also without If-Match), 412 for a stale etag', async () => {
    const missing = 'mailboxes(00000000-0000-4000-8000-0000000000ff)';
    const withStar = await crm.patch(missing, { emailrouteraccessapproval: 1 });
    expect(withStar.status).toBe(404);
    expect(errorOf(withStar)).toEqual({ code: '0x80040217', message: 'mailbox With Id = 00000000-0000-4000-8000-0000000000ff Does Not Exist' });
    expect((await crm.patch(missing, { emailrouteraccessapproval: 1 }, { 'If-Match': '' })).status).toBe(404);
    const m = take();
    const stale = await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1 }, { 'If-Match': `W/"${m.versionnumber - 1}"` });
    expect(stale.status).toBe(412);
    expect(m.emailrouteraccessapproval).not.toBe(1);
    const fresh = await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1 }, { 'If-Match': `W/"${m.versionnumber}"` });
    expect(fresh.status).toBe(204);
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { name: 'x' }, { 'If-None-Match': '*' })).status).toBe(412);
  });

  it('refuses unknown attributes, lookups written as _x_value and unknown navigation properties', async () => {
    const m = take();
    const before = { ...m };
    const unknown = await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1, foo: 1 });
    expect(unknown.status).toBe(400);
    expect(errorOf(unknown).code).toBe('0x80060888');
    expect(errorOf(unknown).message).toContain("does not have a property named 'foo'");
    const lookup = await crm.patch(`mailboxes(${m.mailboxid})`, { _emailserverprofile_value: sim.state.profileIds.legacyPop3 });
    expect(lookup.status).toBe(400);
    expect(errorOf(lookup).message).toContain("'_emailserverprofile_value'");
    const nav = await crm.patch(`mailboxes(${m.mailboxid})`, { 'owner@odata.bind': '/systemusers(00000000-0000-4000-8000-000000000001)' });
    expect(nav.status).toBe(400);
    expect(m).toEqual(before);
  });

  it('refuses the read-only status attributes with 400', async () => {
    const m = take();
    for (const attribute of ['incomingemailstatus', 'outgoingemailstatus', 'actstatus', 'mailboxstatus', 'testemailconfigurationretrycount', 'enabledforincomingemail']) {
      const response = await crm.patch(`mailboxes(${m.mailboxid})`, { [attribute]: attribute.startsWith('enabled') ? true : 1 });
      expect(response.status, attribute).toBe(400);
      expect(errorOf(response).message).toContain(attribute);
    }
    expect(m.incomingemailstatus).toBe(0);
  });

  it('validates option values and JSON types', async () => {
    const m = take();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ emailrouteraccessapproval: 4 }, '0x80044331'],
      [{ emailrouteraccessapproval: -1 }, '0x80044331'],
      [{ incomingemaildeliverymethod: 4 }, '0x80044331'],
      [{ outgoingemaildeliverymethod: 3 }, '0x80044331'],
      [{ actdeliverymethod: 3 }, '0x80044331'],
      [{ emailrouteraccessapproval: '1' }, '0x80060888'],
      [{ emailrouteraccessapproval: 1.5 }, '0x80060888'],
      [{ testemailconfigurationscheduled: 'true' }, '0x80060888'],
      [{ processemailreceivedafter: 'yesterday' }, '0x80060888'],
      [{ name: 'x'.repeat(201) }, '0x80044331'],
    ];
    for (const [body, code] of cases) {
      const response = await crm.patch(`mailboxes(${m.mailboxid})`, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(response).code, JSON.stringify(body)).toBe(code);
    }
    expect(errorOf(await crm.patch(`mailboxes(${m.mailboxid})`, { actdeliverymethod: 3 })).message).toContain('Accepted Values: 0,1,2');
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, '{not json')).status).toBe(400);
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, '[1,2]')).status).toBe(400);
  });

  it('refuses binds to a missing record or to the wrong entity set', async () => {
    const m = take();
    const missing = await crm.patch(`mailboxes(${m.mailboxid})`, { 'emailserverprofile@odata.bind': '/emailserverprofiles(00000000-0000-4000-8000-000000000000)' });
    expect(missing.status).toBe(404);
    expect(errorOf(missing).message).toContain('Does Not Exist');
    const wrongSet = await crm.patch(`mailboxes(${m.mailboxid})`, { 'emailserverprofile@odata.bind': `/mailboxes(${m.mailboxid})` });
    expect(wrongSet.status).toBe(400);
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { 'emailserverprofile@odata.bind': 'Exchange Online' })).status).toBe(400);
  });

  it('answers 403 with prvApproveRejectEmailAddress for owners without the privilege, and only for the approval', async () => {
    const denied = mailboxesWithoutApprovePrivilege(sim.state);
    expect(denied.length).toBeGreaterThan(0);
    const m = denied[0];
    if (!m) throw new Error('no seeded mailbox without privilege');
    const response = await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1 });
    expect(response.status).toBe(403);
    const error = errorOf(response);
    expect(error.code).toBe('0x80040220');
    expect(error.message).toMatch(new RegExp(`^Principal user \\(Id=${m._ownerid_value}, type=8`));
    expect(error.message).toContain('is missing prvApproveRejectEmailAddress privilege');
    expect(m.emailrouteraccessapproval).not.toBe(1);
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { orgmarkedasprimaryforexchangesync: true })).status).toBe(204);
  });

  it('resets the approval when the address changes, and keeps statuscode in step with statecode', async () => {
    const m = take();
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 1 })).status).toBe(204);
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { emailaddress: `new.${m.emailaddress ?? ''}` })).status).toBe(204);
    expect(m.emailrouteraccessapproval).toBe(0);
    expect((await crm.patch(`mailboxes(${m.mailboxid})`, { statecode: 1 })).status).toBe(204);
    expect(m).toMatchObject({ statecode: 1, statuscode: 2 });
  });

  it('returns the row with Prefer: return=representation', async () => {
    const m = take();
    const response = await crm.patch(`mailboxes(${m.mailboxid})`, { emailrouteraccessapproval: 2 }, { Prefer: 'return=representation' });
    expect(response.status).toBe(200);
    expect(response.json).toMatchObject({ mailboxid: m.mailboxid, emailrouteraccessapproval: 2 });
  });

  it('answers 405 for methods the resource does not support', async () => {
    const m = take();
    expect((await crm.send('PATCH', 'mailboxes', '{}', { 'Content-Type': 'application/json' })).status).toBe(405);
    expect((await crm.send('DELETE', `mailboxes(${m.mailboxid})`)).status).toBe(405);
    expect((await crm.send('POST', 'mailboxes', '{}')).status).toBe(405);
    expect((await crm.send('PATCH', `tracelogs(${m.mailboxid})`, '{}')).status).toBe(405);
    expect((await crm.send('GET', '$batch')).status).toBe(405);
  });

  it('creates an email server profile and sets it as the organization default', async () => {
    const created = await crm.send(
      'POST',
      'emailserverprofiles',
      JSON.stringify({ name: 'Exchange Online 2', servertype: 3, usedefaulttenantid: true, useautodiscover: true, minpollingintervalinminutes: 5 }),
      { 'Content-Type': 'application/json' },
    );
    expect(created.status).toBe(204);
    const entityId = created.headers.get('odata-entityid') ?? '';
    const id = /\(([^)]+)\)$/.exec(entityId)?.[1] ?? '';
    expect(sim.state.profiles.get(id)).toMatchObject({ name: 'Exchange Online 2', servertype: 3, minpollingintervalinminutes: 5 });
    const noName = await crm.send('POST', 'emailserverprofiles', JSON.stringify({ servertype: 3 }), { 'Content-Type': 'application/json' });
    expect(noName.status).toBe(400);
    const tooOften = await crm.send('POST', 'emailserverprofiles', JSON.stringify({ name: 'x', minpollingintervalinminutes: 1441 }), { 'Content-Type': 'application/json' });
    expect(tooOften.status).toBe(400);
    const org = sim.state.organization;
    const response = await crm.patch(`organizations(${org.organizationid})`, { 'defaultemailserverprofileid@odata.bind': `/emailserverprofiles(${id})` });
    expect(response.status).toBe(204);
    expect(sim.state.organization._defaultemailserverprofileid_value).toBe(id);
  });
});
