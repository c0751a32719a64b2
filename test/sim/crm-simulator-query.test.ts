import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { EXCHANGE_ONLINE_PROFILE_NAME } from '../../sim/seed-deployment.ts';
import { errorOf, rows, simClient, type SimClient } from './sim-client.ts';

describe('simulated Web API: reads', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 250, seed: 11, pageSizeMax: 100 });
    crm = simClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });

  it('answers WhoAmI with the seeded ids and OData headers (v9.0 and v9.1)', async () => {
    for (const version of ['v9.0', 'v9.1']) {
      const response = await simClient(sim, version).get('WhoAmI');
      expect(response.status).toBe(200);
      expect(response.headers.get('odata-version')).toBe('4.0');
      expect(response.json).toMatchObject({
        UserId: sim.state.callerUserId,
        BusinessUnitId: sim.state.businessUnitId,
        OrganizationId: sim.state.organization.organizationid,
      });
      expect((response.json as Record<string, string>)['@odata.context']).toBe(`${sim.orgUrl}/api/data/${version}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`);
    }
    expect((await simClient(sim, 'v8.2').get('WhoAmI')).status).toBe(404);
    expect((await crm.send('POST', 'WhoAmI', '{}')).status).toBe(405);
  });

  it('pages with odata.maxpagesize and an absolute nextLink until every row was seen once', async () => {
    const filter = 'statecode eq 0 and (emailrouteraccessapproval eq 0 or emailrouteraccessapproval eq 2)';
    const expected = [...sim.state.mailboxes.values()]
      .filter((m) => m.statecode === 0 && (m.emailrouteraccessapproval === 0 || m.emailrouteraccessapproval === 2))
      .map((m) => m.mailboxid)
      .sort();
    let response = await crm.get('mailboxes', { $select: 'emailaddress', $filter: filter, $count: 'true' }, { Prefer: 'odata.maxpagesize=40' });
    expect(response.headers.get('preference-applied')).toBe('odata.maxpagesize=40');
    expect((response.json as Record<string, unknown>)['@odata.count']).toBe(expected.length);
    expect((response.json as Record<string, unknown>)['@odata.context']).toBe(`${crm.root}$metadata#mailboxes(emailaddress)`);
    const seen: string[] = [];
    let pages = 0;
    for (;;) {
      pages++;
      const page = rows(response);
      expect(page.length).toBeLessThanOrEqual(40);
      for (const row of page) {
        expect(Object.keys(row).sort()).toEqual(['@odata.etag', 'emailaddress', 'mailboxid']);
        seen.push(String(row.mailboxid));
      }
      const next = (response.json as Record<string, unknown>)['@odata.nextLink'];
      if (typeof next !== 'string') break;
      expect(next.startsWith(`${crm.root}mailboxes?`)).toBe(true);
      expect(new URL(next).searchParams.get('$filter')).toBe(filter);
      response = await crm.getUrl(next, { Prefer: 'odata.maxpagesize=40' });
      expect(response.status).toBe(200);
    }
    expect(pages).toBe(Math.ceil(expected.length / 40));
    expect(seen).toEqual(expected);
  });

  it('does not skip rows when the rows already read stop matching while paging (keyset paging)', async () => {
    const filter = 'statecode eq 0 and (emailrouteraccessapproval eq 0 or emailrouteraccessapproval eq 2)';
    const before = [...sim.state.mailboxes.values()].filter((m) => m.statecode === 0 && (m.emailrouteraccessapproval === 0 || m.emailrouteraccessapproval === 2)).length;
    const first = await crm.get('mailboxes', { $select: 'emailaddress', $filter: filter }, { Prefer: 'odata.maxpagesize=30' });
    const ids = rows(first).map((r) => String(r.mailboxid));
    // Approve what was read (as the agent does), then follow the link.
    const saved = ids.map((id) => [id, sim.state.mailboxes.get(id)?.emailrouteraccessapproval] as const);
    for (const id of ids) {
      const m = sim.state.mailboxes.get(id);
      if (m) m.emailrouteraccessapproval = 1;
    }
    let total = ids.length;
    let next = (first.json as Record<string, unknown>)['@odata.nextLink'];
    while (typeof next === 'string') {
      const page = await crm.getUrl(next, { Prefer: 'odata.maxpagesize=30' });
      total += rows(page).length;
      next = (page.json as Record<string, unknown>)['@odata.nextLink'];
    }
    for (const [id, value] of saved) {
      const m = sim.state.mailboxes.get(id);
      if (m && value !== undefined) m.emailrouteraccessapproval = value;
    }
    expect(total).toBe(before);
  });

  it('caps the page size at pageSizeMax and applies $top without a nextLink', async () => {
    const all = await crm.get('mailboxes', { $select: 'name' });
    expect(rows(all)).toHaveLength(100);
    expect(typeof (all.json as Record<string, unknown>)['@odata.nextLink']).toBe('string');
    const top = await crm.get('mailboxes', { $select: 'name', $top: '7' }, { Prefer: 'odata.maxpagesize=3' });
    expect(rows(top)).toHaveLength(7);
    expect((top.json as Record<string, unknown>)['@odata.nextLink']).toBeUndefined();
    expect((await crm.get('mailboxes', { $top: '-1' })).status).toBe(400);
    expect((await crm.get('mailboxes', { $skiptoken: 'garbage!' })).status).toBe(400);
  });

  it('orders by attributes and pages an ordered query by offset', async () => {
    const sorted = [...sim.state.mailboxes.values()].map((m) => (m.emailaddress ?? '').toLowerCase()).sort().reverse();
    const got: string[] = [];
    let response = await crm.get('mailboxes', { $select: 'emailaddress', $orderby: 'emailaddress desc' }, { Prefer: 'odata.maxpagesize=60' });
    for (;;) {
      got.push(...rows(response).map((r) => String(r.emailaddress).toLowerCase()));
      const next = (response.json as Record<string, unknown>)['@odata.nextLink'];
      if (typeof next !== 'string') break;
      response = await crm.getUrl(next, { Prefer: 'odata.maxpagesize=60' });
    }
    expect(got).toEqual(sorted);
    expect(errorOf(await crm.get('mailboxes', { $orderby: 'nope asc' })).message).toContain("'nope'");
  });

  it('refuses unknown $select attributes and unsupported query options with 400', async () => {
    const response = await crm.get('mailboxes', { $select: 'emailaddress,foo' });
    expect(response.status).toBe(400);
    expect(errorOf(response)).toEqual({ code: '0x80060888', message: "Could not find a property named 'foo' on type 'Microsoft.Dynamics.CRM.mailbox'." });
    expect((await crm.get('mailboxes', { $expand: 'emailserverprofile' })).status).toBe(400);
    expect((await crm.get('mailboxes', { $skip: '10' })).status).toBe(400);
    // Lookups are read as _x_value; the navigation name is not a property.
    expect((await crm.get('mailboxes', { $select: 'emailserverprofile' })).status).toBe(400);
  });

  it('reads one mailbox with $select, returns 404 for a missing id and 400 for a malformed key', async () => {
    const mailbox = [...sim.state.mailboxes.values()][0];
    expect(mailbox).toBeDefined();
    const id = mailbox?.mailboxid ?? '';
    const response = await crm.get(`mailboxes(${id})`, { $select: 'emailaddress,_emailserverprofile_value,_regardingobjectid_value' });
    expect(response.status).toBe(200);
    expect(response.json).toMatchObject({
      '@odata.context': `${crm.root}$metadata#mailboxes(emailaddress,_emailserverprofile_value,_regardingobjectid_value)/$entity`,
      mailboxid: id,
      emailaddress: mailbox?.emailaddress,
      _emailserverprofile_value: mailbox?._emailserverprofile_value,
      _regardingobjectid_value: mailbox?._regardingobjectid_value,
    });
    const missing = await crm.get('mailboxes(00000000-0000-4000-8000-00000000dead)');
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe('0x80040217');
    expect((await crm.get('mailboxes(not-a-guid)')).status).toBe(400);
    expect((await crm.get('contacts')).status).toBe(404);
    expect(errorOf(await crm.get('contacts')).message).toBe("Resource not found for the segment 'contacts'.");
  });

  it('returns formatted values and lookup annotations when asked', async () => {
    const response = await crm.get(
      'mailboxes',
      { $select: 'emailrouteraccessapproval,actdeliverymethod,enabledforact,_emailserverprofile_value', $top: '5' },
      { Prefer: 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"' },
    );
    expect(response.headers.get('preference-applied')).toBe('odata.include-annotations="OData.Community.Display.V1.FormattedValue"');
    const labels: Record<number, string> = { 0: 'Empty', 1: 'Approved', 2: 'Pending Approval', 3: 'Rejected' };
    for (const row of rows(response)) {
      expect(row['emailrouteraccessapproval@OData.Community.Display.V1.FormattedValue']).toBe(labels[Number(row.emailrouteraccessapproval)]);
      expect(row['enabledforact@OData.Community.Display.V1.FormattedValue']).toBe(row.enabledforact ? 'Yes' : 'No');
      expect(row['_emailserverprofile_value@Microsoft.Dynamics.CRM.lookuplogicalname']).toBeUndefined();
    }
    const plain = await crm.get('mailboxes', { $select: 'emailrouteraccessapproval', $top: '1' });
    expect(Object.keys(rows(plain)[0] ?? {})).not.toContain('emailrouteraccessapproval@OData.Community.Display.V1.FormattedValue');
  });

  it('serves email server profiles, organizations and trace logs with their own filters', async () => {
    const profiles = await crm.get('emailserverprofiles', { $select: 'name,servertype', $filter: `name eq '${EXCHANGE_ONLINE_PROFILE_NAME}'` });
    expect(rows(profiles)).toEqual([
      expect.objectContaining({ emailserverprofileid: sim.state.profileIds.exchangeOnline, name: 'Exchange Online', servertype: 3 }),
    ]);
    const pop3 = await crm.get('emailserverprofiles', { $filter: 'servertype eq 1', $select: 'name' });
    expect(rows(pop3).map((r) => r.name)).toEqual(['Legacy POP3']);
    const orgs = await crm.get('organizations', { $select: 'name,_defaultemailserverprofileid_value,defaultemailsettings' });
    expect(rows(orgs)).toHaveLength(1);
    expect(rows(orgs)[0]).toMatchObject({ name: 'contoso', _defaultemailserverprofileid_value: sim.state.profileIds.exchangeOnline });
    const traces = await crm.get('tracelogs', { $filter: 'createdon ge 2000-01-01T00:00:00Z', $select: 'text,_regardingobjectid_value,createdon,level' });
    expect(rows(traces).length).toBe(sim.state.tracelogs.size);
    expect(sim.state.tracelogs.size).toBeGreaterThan(0);
    const future = await crm.get('tracelogs', { $filter: 'createdon ge 2999-01-01T00:00:00Z' });
    expect(rows(future)).toEqual([]);
  });
});
