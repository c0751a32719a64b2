import { describe, expect, it } from 'vitest';
import { classifyFailure } from '../../agent/runtime/known-errors.ts';
import { seedDeployment } from '../../sim/seed-deployment.ts';
import { SIM_TENANT_ID } from '../../sim/s2s-seed.ts';
import { newProfileRecord, type MailboxRecord, type SimState } from '../../sim/sim-state.ts';
import { evaluateTestOutcome, type TenantFacts } from '../../sim/test-outcome.ts';

const NOW = Date.parse('2026-12-01T10:00:00Z');
const OTHER_TENANT = '11111111-2222-4333-8444-555555555555';
const healthy = { ok: true } as const;

/** A fresh deployment with the runbook's profile and one mailbox configured as procedure.md demands. */
function configuredFresh(): { state: SimState; mailbox: MailboxRecord; profileId: string } {
  const state = seedDeployment({ seed: 3, mailboxCount: 10, nowMs: NOW, scenario: 'fresh' });
  const profileId = '0d0d0d0d-0000-4000-8000-000000000001';
  state.profiles.set(profileId, { ...newProfileRecord(profileId, state.callerUserId, '2026-12-01T10:00:00Z'), name: 'Exchange Online', servertype: 3, incomingcredentialretrieval: 2, outgoingcredentialretrieval: 2 });
  const mailbox = [...state.mailboxes.values()][0];
  if (!mailbox) throw new Error('seed');
  Object.assign(mailbox, {
    _emailserverprofile_value: profileId,
    incomingemaildeliverymethod: 2,
    outgoingemaildeliverymethod: 2,
    actdeliverymethod: 1,
    emailrouteraccessapproval: 1,
  });
  return { state, mailbox, profileId };
}

const tenantSet: TenantFacts = { graphTenantId: SIM_TENANT_ID, organizationTenantId: SIM_TENANT_ID };

describe('Test & Enable outcome rules', () => {
  it('passes a mailbox configured as the procedure demands (profile type 3 active, 2/2/ACT 1, approved, S2S ok, tenant set)', () => {
    const { state, mailbox } = configuredFresh();
    const outcome = evaluateTestOutcome(state, mailbox, healthy, tenantSet);
    expect(outcome).toMatchObject({ cause: 'success', incomingemailstatus: 1, outgoingemailstatus: 1, actstatus: 1, mailboxstatus: 1, traceText: null });
  });

  it('an unconfigured fresh mailbox has nothing to test (delivery None, ACT None = 2)', () => {
    const state = seedDeployment({ seed: 3, mailboxCount: 5, nowMs: NOW, scenario: 'fresh' });
    const mailbox = [...state.mailboxes.values()][0];
    if (!mailbox) throw new Error('seed');
    expect(evaluateTestOutcome(state, mailbox, healthy, tenantSet)).toMatchObject({ cause: 'nothing-to-test', mailboxstatus: 0 });
  });

  it('ACT = 2 (None, not server-side sync: the numbering differs) leaves ACT Not Run and tests only incoming and outgoing', () => {
    const { state, mailbox } = configuredFresh();
    mailbox.actdeliverymethod = 2;
    expect(evaluateTestOutcome(state, mailbox, healthy, tenantSet)).toMatchObject({ cause: 'success', incomingemailstatus: 1, outgoingemailstatus: 1, actstatus: 0, mailboxstatus: 1, traceText: null });
    mailbox.emailrouteraccessapproval = 2;
    expect(evaluateTestOutcome(state, mailbox, healthy, tenantSet)).toMatchObject({ cause: 'not-approved', incomingemailstatus: 2, outgoingemailstatus: 2, actstatus: 0, mailboxstatus: 2 });
  });

  it('only outgoing through server-side sync: incoming and ACT stay Not Run', () => {
    const { state, mailbox } = configuredFresh();
    Object.assign(mailbox, { incomingemaildeliverymethod: 0, actdeliverymethod: 2 });
    expect(evaluateTestOutcome(state, mailbox, healthy, tenantSet)).toMatchObject({ cause: 'success', incomingemailstatus: 0, outgoingemailstatus: 1, actstatus: 0, mailboxstatus: 1 });
  });

  it('a pending mailbox fails with the approval text', () => {
    const { state, mailbox } = configuredFresh();
    mailbox.emailrouteraccessapproval = 2;
    const outcome = evaluateTestOutcome(state, mailbox, healthy, tenantSet);
    expect(outcome.cause).toBe('not-approved');
    expect(classifyFailure(outcome.traceText ?? '').cause).toBe('approval-required');
  });

  it('an inactive profile or one of another type fails', () => {
    const { state, mailbox, profileId } = configuredFresh();
    const profile = state.profiles.get(profileId);
    if (!profile) throw new Error('profile');
    profile.statecode = 1;
    expect(evaluateTestOutcome(state, mailbox, healthy, tenantSet).cause).toBe('profile-inactive');
    profile.statecode = 0;
    profile.servertype = 2;
    const wrong = evaluateTestOutcome(state, mailbox, healthy, tenantSet);
    expect(wrong.cause).toBe('wrong-profile');
    expect(classifyFailure(wrong.traceText ?? '').cause).toBe('exchange-unauthorized');
  });

  it('S2S not working fails with the health text (Failed Authentication)', () => {
    const { state, mailbox } = configuredFresh();
    const outcome = evaluateTestOutcome(state, mailbox, { ok: false, reason: 'not-registered', traceText: 'Failed Authentication: the S2S certificate is missing or invalid. No certificate is registered as S2STokenIssuer.' }, tenantSet);
    expect(outcome.cause).toBe('s2s-auth');
    expect(classifyFailure(outcome.traceText ?? '').cause).toBe('s2s-failed-authentication');
  });

  it('the default tenant: S2STenantId unset or another tenant fails with 401 Unauthorized', () => {
    const { state, mailbox } = configuredFresh();
    for (const organizationTenantId of [null, OTHER_TENANT]) {
      const outcome = evaluateTestOutcome(state, mailbox, healthy, { graphTenantId: SIM_TENANT_ID, organizationTenantId });
      expect(outcome).toMatchObject({ cause: 'wrong-tenant', mailboxstatus: 2 });
      expect(classifyFailure(outcome.traceText ?? '').cause).toBe('exchange-unauthorized');
    }
    // Case does not matter (a GUID).
    expect(evaluateTestOutcome(state, mailbox, healthy, { graphTenantId: SIM_TENANT_ID, organizationTenantId: SIM_TENANT_ID.toUpperCase() }).cause).toBe('success');
  });

  it("a profile with its own tenant id is checked against that, not the organization's", () => {
    const { state, mailbox, profileId } = configuredFresh();
    const profile = state.profiles.get(profileId);
    if (!profile) throw new Error('profile');
    profile.usedefaulttenantid = false;
    profile.exchangeonlinetenantid = SIM_TENANT_ID;
    expect(evaluateTestOutcome(state, mailbox, healthy, { graphTenantId: SIM_TENANT_ID, organizationTenantId: null }).cause).toBe('success');
    profile.exchangeonlinetenantid = OTHER_TENANT;
    expect(evaluateTestOutcome(state, mailbox, healthy, tenantSet).cause).toBe('wrong-tenant');
  });

  it('an owner without Mailbox privileges (knob) fails with Crm.80048306', () => {
    const { state, mailbox } = configuredFresh();
    state.ownersWithoutPrivileges.add((mailbox.emailaddress ?? '').toLowerCase());
    const outcome = evaluateTestOutcome(state, mailbox, healthy, tenantSet);
    expect(outcome.cause).toBe('insufficient-permissions');
    expect(outcome.traceText).toContain('Crm.80048306');
    expect(classifyFailure(outcome.traceText ?? '').cause).toBe('insufficient-permissions');
  });

  it('the configured seed keeps its outcomes when the tenant facts are given (S2STenantId = the Graph tenant)', () => {
    const state = seedDeployment({ seed: 5, mailboxCount: 200, nowMs: NOW });
    for (const mailbox of state.mailboxes.values()) {
      expect(evaluateTestOutcome(state, mailbox, healthy, tenantSet)).toEqual(evaluateTestOutcome(state, mailbox));
    }
  });
});
