import { describe, expect, it } from 'vitest';
import { testAndEnable } from '../../../../agent/jobs/mailboxes/test.ts';
import { MailboxTestStatus as T } from '../../../../jobs/crm-values.ts';
import { fakeMailCrm } from '../../support/fake-mail-crm.ts';
import { testContext } from '../../support/job-context.ts';

/**
 * Test & Enable's outcome with ACT: the runbook (requireActFor) counts a mailbox whose ACT goes
 * through server-side sync as passed only when actstatus is Success too; the `test` command
 * (no option) keeps its rule: incoming and outgoing decide.
 */
function world() {
  const clock = { now: Date.parse('2025-07-01T10:00:00Z') };
  const fake = fakeMailCrm(2, () => ({ ok: true }), () => clock.now);
  const ctx = testContext(fake.crm, { TEST_POLL_INTERVAL_MS: 1_000, TEST_TIMEOUT_MS: 10_000 });
  ctx.now = () => clock.now;
  ctx.sleep = (ms) => {
    clock.now += ms;
    return Promise.resolve();
  };
  // The fake's test sets incoming and outgoing; the first mailbox's ACT stays failed.
  const [first] = fake.mailboxes;
  if (!first) throw new Error('no mailbox');
  first.actstatus = T.Failure;
  const rows = fake.mailboxes.map((m) => ({ mailboxid: m.mailboxid, emailaddress: m.emailaddress, emailrouteraccessapproval: m.emailrouteraccessapproval }));
  return { ctx, rows, first };
}

describe('Test & Enable and the ACT status', () => {
  it('the runbook: a mailbox with server-side-sync ACT not Success fails, and the failure says ACT', async () => {
    const { ctx, rows, first } = world();
    const out = await testAndEnable(rows, ctx, { requireActFor: new Set([first.mailboxid]) });
    expect(out).toMatchObject({ selected: 2, succeeded: 1, failed: 1, noResult: 0 });
    expect(out.failures[0]?.sample).toEqual([first.emailaddress]);
    expect(JSON.stringify(out.failures)).toMatch(/ACT status Failure/);
  });

  it('the test command (no option): incoming and outgoing decide, as before', async () => {
    const { ctx, rows } = world();
    const out = await testAndEnable(rows, ctx);
    expect(out).toMatchObject({ selected: 2, succeeded: 2, failed: 0 });
  });
});
