import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSimulatedScript, type PowershellApiResult } from '../../sim/powershell-api.ts';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { seedS2S } from '../../sim/s2s-seed.ts';
import { s2sHealth } from '../../sim/s2s-state.ts';
import { seedDeployment } from '../../sim/seed-deployment.ts';
import { rows, simClient, type SimClient } from './sim-client.ts';

const NOW = Date.parse('2026-12-01T10:00:00Z');

function output(result: PowershellApiResult): Record<string, unknown> {
  if (!result.ok) throw new Error(`script failed: ${result.message}`);
  return result.output;
}

describe('seed scenarios', () => {
  it("'configured' is the default and unchanged: the same records as without the option", () => {
    const plain = seedDeployment({ seed: 7, mailboxCount: 120, nowMs: NOW });
    const configured = seedDeployment({ seed: 7, mailboxCount: 120, nowMs: NOW, scenario: 'configured' });
    expect([...configured.mailboxes.values()]).toEqual([...plain.mailboxes.values()]);
    expect(configured.organization).toEqual(plain.organization);
    expect(configured.profileIds.exchangeOnline).not.toBeNull();
    expect(configured.userRoles.get(configured.callerUserId)?.map((r) => r.name)).toEqual(['System Administrator']);
  });

  it("'fresh' has no Exchange Online profile, no org defaults, and every mailbox unconfigured (same mailboxes as configured)", () => {
    const configured = seedDeployment({ seed: 7, mailboxCount: 200, nowMs: NOW });
    const fresh = seedDeployment({ seed: 7, mailboxCount: 200, nowMs: NOW, scenario: 'fresh' });
    expect(fresh.profileIds.exchangeOnline).toBeNull();
    expect([...fresh.profiles.values()].map((p) => [p.name, p.servertype]).sort()).toEqual([
      ['Exchange 2013 (on-premises, retired)', 0],
      ['Legacy POP3', 1],
    ]);
    expect(fresh.organization._defaultemailserverprofileid_value).toBeNull();
    expect(fresh.organization.defaultemailsettings).toBe(
      '<EmailSettings><IncomingEmailDeliveryMethod>0</IncomingEmailDeliveryMethod><OutgoingEmailDeliveryMethod>0</OutgoingEmailDeliveryMethod><ACTDeliveryMethod>2</ACTDeliveryMethod></EmailSettings>',
    );
    expect(fresh.organization.emailconnectionchannel).toBe(1);
    expect([...fresh.mailboxes.keys()]).toEqual([...configured.mailboxes.keys()]);
    const approvals = new Set<number>();
    for (const m of fresh.mailboxes.values()) {
      expect(m).toMatchObject({
        statecode: 0,
        _emailserverprofile_value: null,
        incomingemaildeliverymethod: 0,
        outgoingemaildeliverymethod: 0,
        actdeliverymethod: 2,
        incomingemailstatus: 0,
        outgoingemailstatus: 0,
        actstatus: 0,
        mailboxstatus: 0,
        testemailconfigurationretrycount: 0,
      });
      approvals.add(m.emailrouteraccessapproval);
    }
    expect([...approvals].sort()).toEqual([0, 2]);
    expect(fresh.tracelogs.size).toBe(0);
    expect(fresh.badAddresses.size).toBe(0);
    expect([...fresh.principals.values()].every((p) => p.hasApprovePrivilege)).toBe(true);
  });

  it("'fresh' S2S: nothing registered, no certificate anywhere, no key credential, no settings, no tenant id; services running", () => {
    const s2s = seedS2S({ nowMs: NOW, scenario: 'fresh', orgName: 'contoso' });
    expect(s2s.crmCertificate).toBeNull();
    for (const server of s2s.servers) {
      expect(server.store.size).toBe(0);
      expect(Object.values(server.services).map((s) => s.status)).toEqual(['Running', 'Running']);
    }
    expect(s2s.servicePrincipal.keyCredentials).toEqual([]);
    expect(s2s.serverSettings).toEqual({ principalId: null, metadataUrl: null });
    expect(s2s.organization.s2sTenantId).toBeNull();
    expect(s2sHealth(s2s, NOW)).toMatchObject({ ok: false, reason: 'not-registered' });
    const request = { params: {}, files: {}, password: null };
    expect(output(runSimulatedScript(s2s, { script: 'Get-S2SCertificate', ...request }, NOW))).toEqual({ registered: false, derBase64: null });
    expect(output(runSimulatedScript(s2s, { script: 'Get-S2SServerSettings', ...request }, NOW))).toEqual({ principalId: null, metadataUrl: null });
    expect(output(runSimulatedScript(s2s, { script: 'Get-S2STenantId', ...request, params: { OrganizationName: 'contoso' } }, NOW))).toMatchObject({ tenantId: null });
    expect(seedS2S({ nowMs: NOW }).organization.s2sTenantId).toBe(seedS2S({ nowMs: NOW }).tenant.id);
  });
});

describe('a fresh simulator over HTTP', () => {
  let sim: CrmSimulator;
  let crm: SimClient;
  beforeAll(async () => {
    sim = await startCrmSimulator({ mailboxCount: 30, seed: 11, scenario: 'fresh' });
    crm = simClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });

  it('serves the fresh records, reports its scenario, and reseeds fresh on reset', async () => {
    const profiles = rows(await crm.get('emailserverprofiles', { $select: 'name,servertype' }));
    expect(profiles.some((p) => p['servertype'] === 3)).toBe(false);
    const org = rows(await crm.get('organizations', { $select: '_defaultemailserverprofileid_value,emailconnectionchannel' }))[0];
    expect(org).toMatchObject({ _defaultemailserverprofileid_value: null, emailconnectionchannel: 1 });
    const state = (await (await fetch(`${sim.baseUrl}/_sim/state`)).json()) as { scenario: string; summary: { mailboxes: number } };
    expect(state).toMatchObject({ scenario: 'fresh', summary: { mailboxes: 30 } });
    expect(sim.scenario).toBe('fresh');

    const created = await crm.send('POST', 'emailserverprofiles', JSON.stringify({ name: 'Exchange Online', servertype: 3 }), { 'Content-Type': 'application/json' });
    expect(created.status).toBe(204);
    sim.s2s.organization.s2sTenantId = sim.s2s.tenant.id;
    await fetch(`${sim.baseUrl}/_sim/reset`, { method: 'POST' });
    expect([...sim.state.profiles.values()].some((p) => p.servertype === 3)).toBe(false);
    expect(sim.s2s.organization.s2sTenantId).toBeNull();
    expect(sim.s2s.crmCertificate).toBeNull();
  });
});
