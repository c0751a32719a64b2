import { describe, expect, it } from 'vitest';
import { EXCHANGE_ONLINE_PROFILE_NAME, LEGACY_POP3_PROFILE_NAME, seedDeployment } from '../../sim/seed-deployment.ts';
import { mailboxesWithoutApprovePrivilege, type SimState } from '../../sim/sim-state.ts';

function shares(state: SimState) {
  const all = [...state.mailboxes.values()];
  const n = all.length;
  const share = (predicate: (m: (typeof all)[number]) => boolean) => all.filter(predicate).length / n;
  return {
    pending: share((m) => m.statecode === 0 && (m.emailrouteraccessapproval === 0 || m.emailrouteraccessapproval === 2)),
    success: share((m) => m.mailboxstatus === 1),
    failed: share((m) => m.mailboxstatus === 2),
    rejected: share((m) => m.emailrouteraccessapproval === 3),
    inactive: share((m) => m.statecode === 1),
    wrongProfile: share((m) => m._emailserverprofile_value !== state.profileIds.exchangeOnline),
    queues: share((m) => state.principals.get(m._regardingobjectid_value)?.logicalName === 'queue'),
  };
}

describe('seeded deployment', () => {
  it('is deterministic for a seed and different for another', () => {
    const now = Date.parse('2026-11-22T10:00:00Z');
    const a = seedDeployment({ seed: 42, mailboxCount: 100, nowMs: now });
    const b = seedDeployment({ seed: 42, mailboxCount: 100, nowMs: now });
    const c = seedDeployment({ seed: 43, mailboxCount: 100, nowMs: now });
    expect([...a.mailboxes.values()]).toEqual([...b.mailboxes.values()]);
    expect([...a.tracelogs.values()]).toEqual([...b.tracelogs.values()]);
    expect([...a.mailboxes.keys()]).not.toEqual([...c.mailboxes.keys()]);
  });

  it('has the organization, the profiles of both types and realistic mailboxes', () => {
    const state = seedDeployment({ mailboxCount: 320 });
    expect(state.mailboxes.size).toBe(320);
    const profiles = [...state.profiles.values()];
    expect(profiles.find((p) => p.name === EXCHANGE_ONLINE_PROFILE_NAME)?.servertype).toBe(3);
    expect(profiles.find((p) => p.name === LEGACY_POP3_PROFILE_NAME)?.servertype).toBe(1);
    expect(state.organization._defaultemailserverprofileid_value).toBe(state.profileIds.exchangeOnline);
    const addresses = [...state.mailboxes.values()].map((m) => m.emailaddress ?? '');
    expect(new Set(addresses.map((a) => a.toLowerCase())).size).toBe(320);
    for (const address of addresses) expect(address).toMatch(/^[a-z0-9.']+@(contoso\.com|fabrikam\.com|eu\.contoso\.com)$/);
    const pending = [...state.mailboxes.values()].filter((m) => m.emailrouteraccessapproval === 0 || m.emailrouteraccessapproval === 2);
    // Pending mailboxes are already on the right profile with SSS delivery (incoming 2, outgoing 2, ACT 1) unless seeded otherwise.
    const configured = pending.filter((m) => m.incomingemaildeliverymethod === 2 && m.outgoingemaildeliverymethod === 2 && m.actdeliverymethod === 1);
    expect(configured.length).toBe(pending.length);
    // Every failed seeded test left a trace record on its mailbox.
    for (const m of state.mailboxes.values()) {
      const traces = [...state.tracelogs.values()].filter((t) => t._regardingobjectid_value === m.mailboxid);
      expect(traces.length).toBe(m.mailboxstatus === 2 ? 1 : 0);
    }
  });

  it('keeps the same proportions at 5,000 mailboxes', () => {
    const small = shares(seedDeployment({ mailboxCount: 320 }));
    const large = shares(seedDeployment({ mailboxCount: 5000 }));
    expect(large.pending).toBeGreaterThan(0.5);
    for (const key of Object.keys(small) as Array<keyof typeof small>) {
      expect(Math.abs(large[key] - small[key]), key).toBeLessThan(0.05);
      if (key !== 'queues') expect(large[key], key).toBeGreaterThan(0.02);
    }
    const state = seedDeployment({ mailboxCount: 5000 });
    expect(state.badAddresses.size).toBeGreaterThan(300);
    expect(new Set(state.badAddresses.values())).toEqual(new Set(['unauthorized', 'location-unknown', 'insufficient-permissions']));
    expect(mailboxesWithoutApprovePrivilege(state).length).toBeGreaterThan(50);
  });
});
