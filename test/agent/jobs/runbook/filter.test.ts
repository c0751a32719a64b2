import { describe, expect, it } from 'vitest';
import type { CrmApi } from '../../../../agent/adapters/crm/client.ts';
import type { RunbookSettings } from '../../../../agent/runtime/job-context.ts';
import { planSetup } from '../../../../agent/jobs/runbook/plan.ts';
import { runSetup } from '../../../../agent/jobs/runbook/run.ts';
import { isSetupError } from '../../../../core/setup-error.ts';
import { isStableFilter, type MailboxFilter } from '../../../../jobs/mailbox-filter.ts';
import { testContext } from '../../support/job-context.ts';

/**
 * Scope setup re-reads its selection at every mailbox step, after the earlier steps changed the very
 * state a `pending`/`untested`/`failed`/`profile` filter selects on: the agent refuses those filters
 * for scope setup (plan and run) before touching anything; the smaller scopes still take them.
 */
const unstable: MailboxFilter[] = [{ kind: 'pending' }, { kind: 'untested' }, { kind: 'failed' }, { kind: 'profile', name: 'Old' }];
const stable: MailboxFilter[] = [{ kind: 'all' }, { kind: 'domain', domain: 'contoso.com' }, { kind: 'addresses', addresses: ['a@contoso.com'] }];

/** A context whose CRM throws on any use: a refusal must come before the first request. */
function untouchable() {
  const crm = new Proxy({}, { get: () => () => { throw new Error('the CRM was used'); } }) as CrmApi;
  const ctx = testContext(crm);
  ctx.runbook = {} as RunbookSettings;
  return ctx;
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return isSetupError(error) ? { code: error.code, message: error.message } : { code: 'OTHER', message: String(error) };
  }
  return { code: 'NONE', message: '' };
}

describe('run setup accepts only state-independent filters', () => {
  it('isStableFilter: all, domain and addresses only', () => {
    expect(stable.map(isStableFilter)).toEqual([true, true, true]);
    expect(unstable.map(isStableFilter)).toEqual([false, false, false, false]);
  });

  it.each(unstable)('plan and run of scope setup refuse $kind with FILTER_INVALID saying which filters work', async (filter) => {
    const common = { deployment: 'default', requestedBy: 'aaaaaaaa-0000-0000-0000-000000000001', runId: 'r1', scope: 'setup', filter } as const;
    const plan = await codeOf(planSetup({ type: 'setup-plan', ...common }, untouchable()));
    expect(plan.code).toBe('FILTER_INVALID');
    expect(plan.message).toMatch(/all mailboxes, a domain or listed addresses/);
    const run = await codeOf(
      runSetup({ type: 'setup-run', ...common, plannedMailboxes: 3, tenantId: null, certThumbprint: null, approvedBy: 'aaaaaaaa-0000-0000-0000-000000000002', attempt: 1 }, untouchable()),
    );
    expect(run.code).toBe('FILTER_INVALID');
  });

  it('the smaller scope configure still takes a state filter (it runs one step)', async () => {
    const out = await codeOf(planSetup({ type: 'setup-plan', deployment: 'default', requestedBy: 'aaaaaaaa-0000-0000-0000-000000000001', runId: 'r2', scope: 'configure', filter: { kind: 'profile', name: 'Old' } }, untouchable()));
    expect(out.code).not.toBe('FILTER_INVALID');
  });
});
