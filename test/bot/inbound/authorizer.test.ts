import { describe, expect, it } from 'vitest';
import { Authorizer } from '../../../bot/inbound/authorizer.ts';

const op = '11111111-1111-1111-1111-111111111111';
const ap = '22222222-2222-2222-2222-222222222222';
const other = '33333333-3333-3333-3333-333333333333';

describe('Authorizer', () => {
  it('fails closed: empty lists mean nobody', () => {
    const a = new Authorizer({ operators: [], approvers: [] });
    expect(a.canRunCommands(op).allowed).toBe(false);
    expect(a.canApprove(ap).allowed).toBe(false);
    expect(a.canConfirmTest(op, { requesterAadObjectId: op }).allowed).toBe(false);
  });

  it('refuses a missing or empty aadObjectId even if the list has an empty entry', () => {
    const a = new Authorizer({ operators: ['', ' '], approvers: [''] });
    expect(a.canRunCommands(undefined).allowed).toBe(false);
    expect(a.canRunCommands('').allowed).toBe(false);
    expect(a.canApprove('').allowed).toBe(false);
  });

  it('lets operators and approvers run commands; only approvers approve', () => {
    const a = new Authorizer({ operators: [op], approvers: [ap.toUpperCase()] });
    expect(a.canRunCommands(op).allowed).toBe(true);
    expect(a.canRunCommands(ap).allowed).toBe(true);
    expect(a.canApprove(ap).allowed).toBe(true);
    expect(a.canApprove(op).allowed).toBe(false);
    const refusal = a.canRunCommands(other);
    expect(refusal).toMatchObject({ allowed: false });
    if (!refusal.allowed) {
      expect(refusal.reason).toContain('SETUP_OPERATORS');
      expect(refusal.reason).toContain(other);
    }
  });

  it('lets the requesting operator or an approver confirm a test, nobody else', () => {
    const a = new Authorizer({ operators: [op, other], approvers: [ap] });
    expect(a.canConfirmTest(op, { requesterAadObjectId: op }).allowed).toBe(true);
    expect(a.canConfirmTest(ap, { requesterAadObjectId: op }).allowed).toBe(true);
    expect(a.canConfirmTest(other, { requesterAadObjectId: op }).allowed).toBe(false);
    // A requester removed from the operators list can no longer confirm.
    const b = new Authorizer({ operators: [], approvers: [ap] });
    expect(b.canConfirmTest(op, { requesterAadObjectId: op }).allowed).toBe(false);
  });
});

describe('Authorizer.canDecide (the right a run kind asks for)', () => {
  const a = new Authorizer({ operators: ['op'], approvers: ['ap', 'ap2'] });
  it('applies the two-person rule to run setup as to a rotation', () => {
    expect(a.canDecide('second-person', 'ap', { requesterAadObjectId: 'AP', what: 'set-up run' })).toEqual({ allowed: false, reason: 'You asked for this set-up run; another approver must approve it.' });
    expect(a.canDecide('second-person', 'ap2', { requesterAadObjectId: 'ap', what: 'set-up run' })).toEqual({ allowed: true });
    expect(a.canDecide('second-person', 'op', { requesterAadObjectId: 'ap', what: 'rotation' }).allowed).toBe(false);
  });
  it('lets the requester or an approver reject, and the test requester confirm', () => {
    expect(a.canDecide('requester-or-approver', 'op', { requesterAadObjectId: 'op', what: 'run' }).allowed).toBe(true);
    expect(a.canDecide('approver', 'op', { requesterAadObjectId: 'op', what: 'run' }).allowed).toBe(false);
    expect(a.canDecide('test-confirmer', 'op', { requesterAadObjectId: 'op', what: 'run' }).allowed).toBe(true);
  });
});
