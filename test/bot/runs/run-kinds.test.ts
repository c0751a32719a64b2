import { describe, expect, it } from 'vitest';
import { runbookScopeSchema } from '../../../jobs/runbook-types.ts';
import { isRunbookKind, kindOf, runKindSchema, runKinds, runbookKinds } from '../../../bot/runs/run-kinds.ts';

describe('the table of run kinds', () => {
  it('keeps every kind a stored run may have (the kind field of the run hash)', () => {
    expect(runKindSchema.options).toEqual(['approve', 'test', 'status', 'cert-status', 'cert-watch', 'cert-rotate', 'cert-rollback', 'preflight', 'setup', 'profile', 'tenant', 'configure', 'ews', 'primary-org']);
  });

  it('has the runbook kinds of the contract, and only those', () => {
    expect([...runbookKinds].sort()).toEqual([...runbookScopeSchema.options].sort());
    for (const kind of runKindSchema.options) expect(isRunbookKind(kind)).toBe(runbookScopeSchema.safeParse(kind).success);
  });

  it('is consistent: what is approved starts a job of its own, what is resumed or holds the certificate slot is approved', () => {
    for (const [kind, spec] of Object.entries(runKinds)) {
      expect(spec.jobTypes, kind).toContain(spec.firstJob);
      if (spec.approvedJob) expect(spec.jobTypes, kind).toContain(spec.approvedJob);
      expect(spec.approve !== undefined, kind).toBe(spec.approvedJob !== undefined);
      expect(spec.immediate && spec.approve !== undefined, kind).toBe(false);
      if (spec.resumable || spec.certChange) expect(spec.approve, kind).toBeDefined();
      if (spec.approve === 'second-person') expect(spec.what, kind).not.toBe('run');
    }
  });

  it('answers the questions the bot used to ask of the kind', () => {
    expect(Object.entries(runKinds).filter(([, s]) => s.certChange).map(([k]) => k)).toEqual(['cert-rotate', 'cert-rollback', 'setup']);
    expect(Object.entries(runKinds).filter(([, s]) => s.approve === 'second-person').map(([k]) => k)).toEqual(['cert-rotate', 'cert-rollback', 'setup']);
    expect(Object.entries(runKinds).filter(([, s]) => s.immediate).map(([k]) => k)).toEqual(['status', 'cert-status', 'cert-watch', 'preflight']);
    expect(kindOf({ kind: 'setup' })).toMatchObject({ family: 'runbook', needsChecklist: true, what: 'set-up run', hasMailboxSteps: true, newPlanCommand: 'run setup' });
    expect(kindOf({ kind: 'test' })).toMatchObject({ family: 'mailboxes', confirms: true, approve: 'test-confirmer' });
    expect(kindOf({ kind: 'cert-rollback' })).toMatchObject({ family: 'cert', rollsBack: true, rollsForward: false, resumable: false });
  });
});
