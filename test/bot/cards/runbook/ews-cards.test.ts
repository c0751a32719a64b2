import { describe, expect, it } from 'vitest';
import { MAX_CARD_BYTES, cardBytes, type AdaptiveCardJson } from '../../../../bot/cards/common/card-kit.ts';
import { ewsAllGood, ewsSection } from '../../../../bot/cards/runbook/ews-card-parts.ts';
import { preflightCard } from '../../../../bot/cards/runbook/preflight-card.ts';
import { setupPlanCard } from '../../../../bot/cards/runbook/setup-plan-card.ts';
import { statusCard } from '../../../../bot/cards/mailboxes/status-card.ts';
import type { Run } from '../../../../bot/runs/run-model.ts';
import type { EwsAccessReport } from '../../../../jobs/ews-access.ts';
import type { StatusResult } from '../../../../jobs/job-types.ts';
import { cardText } from '../../../support/fake-connector.ts';
import { preflightChecks, preflightResult, runFixture, setupPlan } from '../../setup-fixtures.ts';

/** The "EWS in Exchange Online" section, and no green headline while Exchange refuses CRM's EWS calls. */
const blocked: EwsAccessReport = {
  verdict: 'blocked',
  organizationEnabled: false,
  appId: '00000007-0000-0000-c000-000000000000',
  appAllowed: false,
  allowedAppIds: ['d3590ed6-52b3-4102-aeff-aad2292ab01c'],
  applicationAccessPolicy: null,
  mailboxesChecked: 540,
  mailboxesDisabled: 12,
  disabledSample: ['ann@contoso.com', 'ben@contoso.com'],
  daysLeft: 115,
  detail: "Exchange Online blocks EWS for CRM: the organization's EwsEnabled is False.",
  fix: 'Run `@setup ews allow` (an approver confirms).',
};
const allowed: EwsAccessReport = { ...blocked, verdict: 'allowed', organizationEnabled: true, appAllowed: true, mailboxesDisabled: 0, disabledSample: [], detail: 'Exchange Online allows EWS for CRM.' };
const { fix: _noFix, ...allowedWithoutFix } = allowed;

const run = (patch: Partial<Run> = {}): Run => runFixture({ kind: 'status', state: 'succeeded', ...patch });

const status = (ews?: EwsAccessReport): StatusResult => ({ type: 'status', total: 540, approval: { empty: 0, approved: 540, pending: 0, rejected: 0 }, test: { success: 540, failure: 0, notRun: 0 }, crmUser: 'svc', ...(ews ? { ews } : {}) });

/** The color of the first TextBlock whose text starts with `prefix`. */
function colorOf(card: AdaptiveCardJson, prefix: string): unknown {
  const found: unknown[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      const el = node as Record<string, unknown>;
      if (el['type'] === 'TextBlock' && typeof el['text'] === 'string' && el['text'].startsWith(prefix)) found.push(el['color']);
      Object.values(el).forEach(walk);
    }
  };
  walk(card.body);
  return found[0];
}

describe('the EWS section', () => {
  it('status: blocked in Attention with the days left, the blocked mailboxes, what to do and how to confirm the app ID', () => {
    const card = statusCard(run(), { lastSeenSeconds: 3 }, status(blocked));
    const text = cardText(card);
    expect(text).toContain('EWS is blocked for CRM in Exchange Online: server-side sync fails until it is allowed');
    expect(text).toContain('115 days left until EWS in Exchange Online is switched off for good (1 April 2027).');
    expect(text).toContain('Mailboxes with EwsEnabled False: ann@contoso.com, ben@contoso.com and 10 more');
    expect(text).toContain('What to do: Run `@setup ews allow`');
    expect(text).toContain("EWS usage report");
    expect(colorOf(card, 'EWS is blocked')).toBe('Attention');
  });

  it('status: allowed is green only with no mailbox blocked; an agent that does not report EWS says so', () => {
    expect(colorOf(statusCard(run(), { lastSeenSeconds: 3 }, status(allowedWithoutFix)), 'Exchange Online allows EWS for CRM')).toBe('Good');
    const some = statusCard(run(), { lastSeenSeconds: 3 }, status({ ...allowed, mailboxesDisabled: 2, disabledSample: ['ann@contoso.com'] }));
    expect(colorOf(some, 'Exchange Online allows EWS for CRM, but 2 mailboxes have EWS disabled')).toBe('Warning');
    expect(cardText(statusCard(run(), { lastSeenSeconds: 3 }, status()))).toContain('EWS access in Exchange Online: not reported by this agent');
    expect(ewsAllGood(allowed)).toBe(true);
    expect(ewsAllGood({ ...allowed, mailboxesDisabled: 1 })).toBe(false);
    expect(ewsAllGood({ ...allowed, olderPolicyApplies: true })).toBe(false);
    const policy = statusCard(run(), { lastSeenSeconds: 3 }, status({ ...allowedWithoutFix, olderPolicyApplies: true }));
    expect(colorOf(policy, 'Exchange Online allows EWS for CRM, but the older EwsApplicationAccessPolicy may still refuse it')).toBe('Warning');
  });

  it('after the shutdown: switched off, with the options', () => {
    const text = cardText({ type: 'AdaptiveCard', version: '1.5', body: ewsSection({ ...blocked, verdict: 'shut-down', daysLeft: 0, fix: 'Exchange Server or Dynamics 365 online.' }) });
    expect(text).toContain('EWS in Exchange Online is switched off for good');
    expect(text).toContain('Switched off since 1 April 2027.');
  });

  it('preflight: every check passed is not green while EWS is blocked', () => {
    const checks = preflightChecks();
    const ok = preflightCard(run({ kind: 'preflight' }), { ...preflightResult(checks), ews: allowedWithoutFix });
    expect(colorOf(ok, 'Ready: every check passed')).toBe('Good');
    const card = preflightCard(run({ kind: 'preflight' }), { ...preflightResult(checks), ews: blocked });
    expect(colorOf(card, 'Ready to set up, but mail will not sync until Exchange Online allows EWS for CRM')).toBe('Warning');
    expect(cardText(card)).toContain('EWS in Exchange Online');
  });

  it('plan: nothing to change is not green while EWS is blocked; the longest section keeps the card under the size limit', () => {
    const plan = { ...setupPlan('ews', { done: ['ews-access'] }), ews: { ...blocked, mailboxesDisabled: 0 } };
    const card = setupPlanCard(run({ kind: 'ews', state: 'awaiting-approval' }), plan);
    expect(colorOf(card, 'Nothing to change')).toBe('Warning');
    const longest = { ...blocked, detail: 'x'.repeat(600), fix: 'y'.repeat(1200), disabledSample: Array.from({ length: 10 }, (_, i) => `${'z'.repeat(300)}${i}@contoso.com`) };
    const big = setupPlanCard(run({ kind: 'setup', state: 'awaiting-approval', filter: { kind: 'all' } }), { ...setupPlan('setup'), ews: longest });
    expect(cardBytes(big)).toBeLessThan(MAX_CARD_BYTES);
  });
});
