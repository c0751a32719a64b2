import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { stepTitles } from '../../../../jobs/cert-types.ts';
import { newRunId } from '../../../../jobs/job-options.ts';
import type { SetupRunResult } from '../../../../jobs/job-types.ts';
import { setupStepIds, type SetupStepId } from '../../../../jobs/runbook-types.ts';
import type { CrmSimulator } from '../../../../sim/crm-simulator.ts';
import type { S2SFault } from '../../../../sim/s2s-state.ts';
import { runPayload, startSetupWorld, type SetupWorld } from '../../support/setup-world.ts';

/**
 * For every step of the runbook: a failure injected in that step (a fault of the script, Graph call
 * or CRM write it makes, or a simulator knob) halts the run at that step, with the step's title, the
 * cause and a remediation; after the fix, attempt 2 finishes the run, skipping the steps done and
 * without making their changes again. (The adfs step runs nothing: it writes a script, so it has
 * nothing to fail.)
 */
let sim: CrmSimulator;
let run: SetupWorld['run'];
let plan: SetupWorld['plan'];
let world: SetupWorld;

beforeAll(async () => {
  world = await startSetupWorld({ seed: 33, mailboxCount: 12, testDelayMs: 30, env: { TEST_POLL_INTERVAL_MS: '50', CERT_LOCK_TTL_MS: '3000' } });
  ({ sim, run, plan } = world);
}, 60_000);

afterAll(async () => {
  await world.close();
});

beforeEach(() => {
  sim.reset();
});

/** The first active mailbox (its address and owner). */
function firstMailbox() {
  const m = [...sim.state.mailboxes.values()].find((x) => x.statecode === 0 && x.emailaddress);
  if (!m?.emailaddress) throw new Error('no active mailbox');
  return m;
}

interface FaultCase {
  step: SetupStepId;
  /** Injects the failure (after the plan: a plan must not use a fault up). */
  inject: () => void;
  /** Removes its cause (faults with `times: 1` are used up by the failing attempt: nothing to do). */
  fix?: () => void;
  /** What the message or the hint must say. */
  says: RegExp;
}

const fault = (f: Omit<S2SFault, 'times'> & { times?: number }) => () => sim.configureS2S({ faults: [{ times: 1, ...f }] });

const cases: FaultCase[] = [
  {
    step: 'preflight',
    inject: () => sim.setKnobs({ localAdministrator: false }),
    fix: () => sim.setKnobs({ localAdministrator: true }),
    says: /administrator/i,
  },
  { step: 'import', inject: fault({ target: 'Import-S2SCertificate@CRMAPP02', message: 'Exception calling "Import": private key not found' }), says: /same subject/i },
  { step: 'grant-key-access', inject: fault({ target: 'Grant-CertificateKeyAccess@CRMAPP01', message: 'Set-Acl : Attempted to perform an unauthorized operation.' }), says: /unauthorized/i },
  { step: 'register-crm', inject: fault({ target: 'Register-S2SCertificate', message: 'Set-CrmCertificate : Failed Authentication' }), says: /certificate.*(missing|invalid)/i },
  { step: 'entra-key-credential', inject: fault({ target: 'graph:patch-service-principal', message: '403' }), says: /Application\.ReadWrite\.All|permission|privileges/i },
  { step: 's2s-settings', inject: fault({ target: 'Set-S2SServerSettings', message: 'Set-CrmAdvancedSetting : The Deployment Service cannot be reached.' }), says: /Deployment Service/ },
  { step: 'tenant-id', inject: fault({ target: 'Set-S2STenantId', message: 'Set-CrmAdvancedSetting : The caller does not have the Deployment Administrator role.' }), says: /Deployment Administrator/ },
  {
    step: 'ews-access',
    inject: fault({ target: 'Set-EwsAccess', message: "Set-OrganizationConfig : The role assigned to application 3f2e1d0c isn't supported in this scenario." }),
    says: /Exchange\.ManageAsApp/,
  },
  { step: 'restart-services', inject: fault({ target: 'Restart-CrmAsyncServices@CRMAPP02', message: "Restart-Service : Service 'MSCRMAsyncService' cannot be started." }), says: /cannot be started/ },
  {
    step: 'email-profile',
    inject: fault({ target: 'crm:POST emailserverprofiles', message: 'Crm.80048306 insufficient permissions: prvCreateEmailServerProfile', status: 403 }),
    says: /privilege|permission/i,
  },
  { step: 'org-defaults', inject: fault({ target: 'crm:PATCH organizations', message: 'Crm.80048306 insufficient permissions: prvWriteOrganization', status: 403 }), says: /privilege|permission/i },
  { step: 'configure-mailboxes', inject: fault({ target: 'crm:PATCH mailboxes', message: 'Crm.80048306 insufficient permissions: prvWriteMailbox', status: 403, times: 3 }), says: /privilege|permission/i },
  {
    step: 'approve-email',
    inject: () => {
      const owner = sim.state.principals.get(firstMailbox()._ownerid_value);
      if (!owner) throw new Error('no owner');
      owner.hasApprovePrivilege = false;
    },
    fix: () => {
      const owner = sim.state.principals.get(firstMailbox()._ownerid_value);
      if (owner) owner.hasApprovePrivilege = true;
    },
    says: /approve|privilege/i,
  },
  {
    step: 'test-enable',
    inject: () => sim.setKnobs({ ownersWithoutPrivileges: [firstMailbox().emailaddress ?? ''] }),
    fix: () => sim.setKnobs({ ownersWithoutPrivileges: [] }),
    says: /privilege|permission/i,
  },
];

describe('an injected failure in each step of the runbook', () => {
  it('covers every step that does something', () => {
    expect(cases.map((c) => c.step)).toEqual(setupStepIds.filter((id) => id !== 'adfs'));
  });

  it.each(cases)('$step: halts there with the cause and what to do; attempt 2 finishes without redoing what was done', async (c) => {
    const p = await plan();
    expect(p.blocked, JSON.stringify(p.blockers)).toBe(false);
    c.inject();
    const runId = newRunId();
    const first = await run<SetupRunResult>(runPayload(p, runId, 1));
    expect(first.state).toBe('failed');
    const failed = first.reports.find((r) => r.event.kind === 'failed')?.event;
    if (failed?.kind !== 'failed') throw new Error('no failed report');
    const steps = failed.steps ?? [];
    const at = steps.findIndex((s) => s.id === c.step);
    expect(steps[at]?.state, JSON.stringify(steps)).toBe('failed');
    // Everything before it is done (or skipped), nothing after it ran.
    expect(steps.slice(0, at).every((s) => s.state === 'done' || s.state === 'skipped'), JSON.stringify(steps)).toBe(true);
    expect(steps.slice(at + 1).every((s) => s.state === 'pending')).toBe(true);
    expect(failed.error.message).toContain(stepTitles[c.step]);
    expect(failed.error.hint ?? '', 'a remediation').not.toBe('');
    expect(`${failed.error.message} ${failed.error.hint ?? ''}`).toMatch(c.says);
    const changesAfterFirst = { ...sim.counters().changes };
    const profilesAfterFirst = sim.counters().crmWrites['POST emailserverprofiles'] ?? 0;

    c.fix?.();
    const second = await run<SetupRunResult>(runPayload(p, runId, 2), 2);
    expect(second.state, JSON.stringify(second.reports.at(-1))).toBe('completed');
    expect(second.result?.steps.every((s) => s.state === 'done' || (s.id === 'adfs' && s.state === 'skipped'))).toBe(true);
    for (const done of steps.slice(0, at).filter((s) => s.state === 'done' && s.id !== 'preflight')) {
      expect(second.result?.steps.find((s) => s.id === done.id)?.detail, done.id).toMatch(/earlier attempt/);
    }
    // The scripts of the steps done in attempt 1 changed nothing again; the profile was created once.
    const own: Partial<Record<SetupStepId, string>> = { import: 'Import-S2SCertificate', 'register-crm': 'Register-S2SCertificate', 's2s-settings': 'Set-S2SServerSettings', 'tenant-id': 'Set-S2STenantId' };
    for (const [id, script] of Object.entries(own)) {
      if (id === c.step || !steps.slice(0, at).some((s) => s.id === id)) continue;
      expect(sim.counters().changes[script] ?? 0, script).toBe(changesAfterFirst[script] ?? 0);
    }
    expect(sim.counters().crmWrites['POST emailserverprofiles'] ?? 0).toBe(Math.max(1, profilesAfterFirst));
  }, 120_000);
});
