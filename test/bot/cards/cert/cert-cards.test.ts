import { describe, expect, it } from 'vitest';
import { MAX_CARD_BYTES, cardBytes, type AdaptiveCardJson } from '../../../../bot/cards/common/card-kit.ts';
import { certPlanBlockedCard, certPlanCard, certPlanFailedCard, certPlanningCard } from '../../../../bot/cards/cert/cert-plan-card.ts';
import { certRollbackCard } from '../../../../bot/cards/cert/cert-rollback-card.ts';
import { certResultsCard, certRunCard, currentCertCard } from '../../../../bot/cards/cert/cert-run-card.ts';
import { certStatusCard, certStatusFailedCard } from '../../../../bot/cards/cert/cert-status-card.ts';
import type { Run } from '../../../../bot/runs/run-model.ts';
import type { CertProblem, Verification } from '../../../../jobs/cert-types.ts';
import { NEW_THUMBPRINT, OLD_THUMBPRINT, certPlanResult, certRollbackResult, certRotateResult, certStatusResult, certSummary, rollbackStepsFailedAt, rotationSteps, rotationStepsFailedAt } from '../../../support/cert-fixtures.ts';

const long = (n: number, c = 'x') => c.repeat(n);
const problem: CertProblem = { code: 'KEY_TOO_SMALL', severity: 'error', message: long(300, 'm'), fix: long(400, 'f') };
const bigSummary = certSummary({ subject: long(400, 's'), issuer: long(400, 'i'), problems: Array.from({ length: 20 }, () => problem) });
const bigVerification: Verification = {
  selected: 5000,
  succeeded: 1,
  failed: 4999,
  noResult: 0,
  failures: Array.from({ length: 20 }, () => ({ cause: long(64), title: long(200, 't'), remediation: long(600, 'r'), count: 9, sample: Array.from({ length: 10 }, () => `${long(300, 'a')}@c.com`), example: long(400, 'e') })),
};
const bigSteps = rotationSteps('failed').map((s) => ({ ...s, detail: long(300, 'd') }));

function run(overrides: Partial<Run> = {}): Run {
  return {
    runId: 'abcdef1234',
    deployment: 'contoso',
    kind: 'cert-rotate',
    state: 'awaiting-approval',
    requester: { aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'Olivia' },
    conversation: { channelId: 'msteams', serviceUrl: 'http://127.0.0.1:1/', conversation: { id: 'c' }, bot: { id: 'b' } },
    cardActivityId: 'm1',
    createdAt: '2030-01-01T00:00:00.000Z',
    updatedAt: '2030-01-01T00:00:00.000Z',
    expiresAt: '2030-01-01T01:00:00.000Z',
    plan: certPlanResult({ current: bigSummary, next: { ...bigSummary, thumbprint: NEW_THUMBPRINT }, servers: Array.from({ length: 20 }, () => long(100, 'S')), steps: bigSteps }),
    attempt: 1,
    steps: bigSteps,
    error: { code: 'POWERSHELL_FAILED', message: long(1000, 'm'), hint: long(1000, 'h') },
    progressSeq: -1,
    lastPostedSeq: -1,
    lastPostedAt: 0,
    finalPostedSeq: -1,
    resultsSentSeq: -1,
    ...overrides,
  };
}

describe('certificate cards', () => {
  it('stay under the Teams card size with every field at its maximum', () => {
    const r = run();
    const plan = r.plan?.type === 'cert-plan' ? r.plan : certPlanResult();
    const status = certStatusResult({
      registered: bigSummary,
      servers: Array.from({ length: 20 }, (_, i) => ({ server: long(100, String(i % 10)), thumbprint: OLD_THUMBPRINT, found: true, keySpec: 1, hasPrivateKey: true, serviceAccountCanRead: false, duplicateSubject: true, services: Array.from({ length: 4 }, () => ({ name: long(80, 'n'), status: long(40, 's') })) })),
      entra: { servicePrincipalId: 'sp', spnPresent: false, keyCredentials: Array.from({ length: 50 }, () => ({ keyId: long(64, 'k'), thumbprint: OLD_THUMBPRINT, displayName: long(400, 'd'), usage: 'Verify', type: 'AsymmetricX509Cert', startDateTime: '2025-01-01T00:00:00.000Z', endDateTime: '2026-01-01T00:00:00.000Z' })) },
      findings: Array.from({ length: 30 }, () => ({ message: long(300, 'm'), fix: long(400, 'f') })),
    });
    const cards: [string, AdaptiveCardJson][] = [
      ['planning', certPlanningCard(r)],
      ['plan', certPlanCard(r, plan)],
      ['blocked', certPlanBlockedCard(r, plan)],
      ['plan failed', certPlanFailedCard(r)],
      ['status', certStatusCard(run({ kind: 'cert-status', state: 'succeeded' }), status)],
      ['status failed', certStatusFailedCard(run({ kind: 'cert-status', state: 'failed' }))],
      ['halted', certRunCard(run({ state: 'halted', failedRollbackRunId: 'rollback01', result: certRotateResult('verification-failed', { verification: bigVerification, steps: bigSteps }) }))],
      ['results', certResultsCard(r, certRotateResult('verification-failed', { verification: bigVerification, steps: bigSteps }))],
      ['rollback', certRollbackCard(run({ kind: 'cert-rollback', rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT }, parentRunId: 'zyxwvu9876' }))],
      ['rollback failed', certRunCard(run({ kind: 'cert-rollback', state: 'failed' }))],
    ];
    for (const [name, c] of cards) {
      expect(cardBytes(c), name).toBeLessThan(MAX_CARD_BYTES);
    }
  });

  it('offers Roll back only when there was an old certificate to restore and CRM\'s registration was changed', () => {
    const registered = rotationSteps('done');
    const withOld = certRunCard(run({ state: 'halted', steps: registered }));
    expect(withOld.actions?.map((a) => a['verb'])).toEqual(['cert.resume', 'cert.rollback']);
    const firstEver = certRunCard(run({ state: 'halted', steps: registered, plan: certPlanResult({ current: null }) }));
    // Registered, nothing to roll back to: only Resume (it cannot be abandoned either).
    expect(firstEver.actions?.map((a) => a['verb'])).toEqual(['cert.resume']);
    // Stopped before register-crm: nothing to roll back, and the card says so.
    const beforeRegister = rotationSteps('pending').map((s) => (s.id === 'validate' || s.id === 'import' ? { ...s, state: 'done' as const } : s.id === 'grant-key-access' ? { ...s, state: 'failed' as const } : s));
    const early = certRunCard(run({ state: 'halted', steps: beforeRegister }));
    // … but it can be abandoned, freeing the way for another rotation.
    expect(early.actions?.map((a) => a['verb'])).toEqual(['cert.resume', 'cert.abandon']);
    expect(JSON.stringify(early)).toContain('registration was not changed');
    expect(JSON.stringify(early)).toContain('Halted: a step failed.');
  });

  it('follow whether any attempt touched the registration, not the latest steps: Roll back without Abandon once register-crm ran or failed', () => {
    // Attempt 2 failed at validate after attempt 1 registered: its steps show register-crm pending.
    const later = certRunCard(run({ state: 'halted', attempt: 2, steps: rotationStepsFailedAt('validate'), registrationTouched: true }));
    expect(later.actions?.map((a) => a['verb'])).toEqual(['cert.resume', 'cert.rollback']);
    expect(JSON.stringify(later)).not.toContain('registration was not changed');
    // register-crm failed (Set-CrmCertificate may have taken effect): Roll back, no Abandon.
    const failed = certRunCard(run({ state: 'halted', steps: rotationStepsFailedAt('register-crm') }));
    expect(failed.actions?.map((a) => a['verb'])).toEqual(['cert.resume', 'cert.rollback']);
    // Without the flag and with register-crm pending: Abandon.
    expect(certRunCard(run({ state: 'halted', steps: rotationStepsFailedAt('validate') })).actions?.map((a) => a['verb'])).toEqual(['cert.resume', 'cert.abandon']);
  });

  it('a rotation halted again by a rollback that changed nothing names it; that rollback\'s card says the rotation is halted again', () => {
    const rotation = JSON.stringify(certRunCard(run({ state: 'halted', steps: rotationSteps('done'), registrationTouched: true, failedRollbackRunId: 'rollback01' })));
    expect(rotation).toContain('The rollback (run rollback01) failed before changing CRM\'s registration');
    const rollback = { kind: 'cert-rollback' as const, state: 'failed' as const, parentRunId: 'rotation01', plan: certPlanResult(), error: { code: 'STEP_FAILED', message: 'validate-old failed' } };
    const untouched = JSON.stringify(certRunCard(run({ ...rollback, steps: rollbackStepsFailedAt('validate-old') })));
    expect(untouched).toContain('Nothing was changed by this rollback');
    expect(untouched).toContain('The rotation (run rotation01) is halted again');
    expect(untouched).not.toContain('`@setup cert rotate` again');
    const touched = JSON.stringify(certRunCard(run({ ...rollback, steps: rollbackStepsFailedAt('verify') })));
    expect(touched).toContain('`@setup cert rotate` again');
    expect(touched).not.toContain('Nothing was changed by this rollback');
  });

  it('a rotation no agent started says so, not "a step failed", and offers Resume or Abandon', () => {
    const notStarted = { code: 'JOB_NOT_STARTED', message: 'No on-premises agent started the rotation within 30 minutes, so the job expired and no agent will run it.', hint: 'Start the agent, then Resume.' };
    const c = certRunCard(run({ state: 'halted', steps: certPlanResult().steps, error: notStarted }));
    const text = JSON.stringify(c);
    expect(text).toContain('Halted: no agent started the rotation before it expired; nothing was changed.');
    expect(text).not.toContain('a step failed');
    expect(text).not.toContain('Stopped at');
    expect(c.actions?.map((a) => a['verb'])).toEqual(['cert.resume', 'cert.abandon']);
    expect(JSON.stringify(certRunCard(run({ state: 'halted', attempt: 3, steps: certPlanResult().steps, error: notStarted })))).toContain('no agent started attempt 3 of the rotation before it expired; this attempt changed nothing');
  });

  it('a halted rotation with a pending rollback shows who asked and has no buttons', () => {
    const beth = { aadObjectId: '55555555-5555-5555-5555-555555555555', name: 'Beth' };
    const c = certRunCard(run({ state: 'halted', steps: rotationSteps('done'), rollbackRunId: 'rollback01', rollbackRequestedBy: beth }));
    expect(JSON.stringify(c)).toContain('Rollback requested by Beth: waiting for approval on the rollback card (run rollback01)');
    expect(c.actions ?? []).toEqual([]);
  });

  it('the rollback plan says the failed certificate\'s key credential is removed once verified, and lists retire-failed', () => {
    const text = JSON.stringify(certRollbackCard(run({ kind: 'cert-rollback', rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT }, parentRunId: 'zyxwvu9876' })));
    expect(text).toContain(`${NEW_THUMBPRINT} (its key credential is removed from Entra ID once the rollback's verification passes)`);
    expect(text).toContain("Remove the failed certificate's key credential");
    expect(text).not.toContain('until a later rotation');
    const rolledBack = JSON.stringify(certResultsCard(run({ kind: 'cert-rollback', rollback: { restoreThumbprint: OLD_THUMBPRINT, failedThumbprint: NEW_THUMBPRINT } }), certRollbackResult()));
    expect(rolledBack).toContain('"title":"Failed certificate\'s key credential","value":"removed from Entra ID"');
    expect(JSON.stringify(certResultsCard(run({ kind: 'cert-rollback' }), certRollbackResult('verification-failed')))).toContain('kept (the verification did not pass)');
  });

  it('a blocked plan shows every reason: the certificate\'s problems with their fixes and each step that cannot go on', () => {
    const next = certSummary({ thumbprint: NEW_THUMBPRINT, problems: [{ code: 'WEAK_SIGNATURE', severity: 'error', message: 'Signed with SHA-1.', fix: 'Ask the CA for a SHA-256 certificate.' }] });
    const steps = certPlanResult().steps.map((s) =>
      s.id === 'validate'
        ? { ...s, state: 'failed' as const, detail: 'cannot rotate: Signed with SHA-1.' }
        : s.id === 'import'
          ? { ...s, state: 'failed' as const, detail: 'CRMAPP02 already has another certificate with subject CN=crm-s2s.contoso.com ("private key not found")' }
          : s.id === 'grant-key-access'
            ? { ...s, state: 'failed' as const, detail: 'CRMAPP01 could not be read: WinRM refused the connection' }
            : s,
    );
    const both = JSON.stringify(certPlanBlockedCard(run({ state: 'plan-failed' }), certPlanResult({ next, steps, blocked: true })));
    expect(both).toContain('Cannot rotate: the new certificate in `s2s-new.pfx` does not meet the requirements, and 2 steps cannot go on.');
    expect(both).toContain('What to do: Ask the CA for a SHA-256 certificate.');
    expect(both).toContain('CRMAPP02 already has another certificate with subject CN=crm-s2s.contoso.com');
    expect(both).toContain('CRMAPP01 could not be read: WinRM refused the connection');
    // The validate step repeats the certificate's problems: not listed twice.
    expect(both).not.toContain('cannot rotate: Signed with SHA-1.');
    const stepsOnly = JSON.stringify(certPlanBlockedCard(run({ state: 'plan-failed' }), certPlanResult({ steps: steps.filter((s) => s.id !== 'validate'), blocked: true })));
    expect(stepsOnly).toContain('Cannot rotate: 2 steps cannot go on.');
    expect(stepsOnly).not.toContain('does not meet the requirements');
    expect(stepsOnly).toContain('CRMAPP01 could not be read');
  });

  it('says who resumed, who asked for the rollback, and that a withdrawal was the requester\'s', () => {
    const olivia = { aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'Olivia' };
    const adam = { aadObjectId: '22222222-2222-2222-2222-222222222222', name: 'Adam' };
    expect(JSON.stringify(currentCertCard(run({ state: 'approved', attempt: 2, resumedBy: adam })))).toContain('Resumed by Adam (attempt 2)');
    expect(JSON.stringify(currentCertCard(run({ state: 'superseded', supersededBy: adam, rollbackRunId: 'rollback01' })))).toContain('Rollback requested by Adam and approved (run rollback01): see the rollback card');
    const resumed = JSON.stringify(currentCertCard(run({ state: 'running', attempt: 2, resumedBy: adam, approval: { decision: 'approved', decidedBy: olivia, decidedAt: '2030-01-01T00:10:00.000Z' } })));
    expect(resumed).toContain('{"title":"Approved by","value":"Olivia"}');
    expect(resumed).toContain('{"title":"Resumed by","value":"Adam"}');
    expect(JSON.stringify(currentCertCard(run({ state: 'rejected', approval: { decision: 'rejected', decidedBy: olivia, decidedAt: '2030-01-01T00:10:00.000Z' } })))).toContain('Withdrawn by Olivia');
    expect(JSON.stringify(currentCertCard(run({ state: 'rejected', approval: { decision: 'rejected', decidedBy: adam, decidedAt: '2030-01-01T00:10:00.000Z' } })))).toContain('Rejected by Adam');
  });
});
