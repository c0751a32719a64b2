import { describe, expect, it } from 'vitest';
import { MAX_CARD_BYTES, MAX_CODE_RUNS, cardBytes, codeBlock } from '../../../../bot/cards/common/card-kit.ts';
import { preflightCard } from '../../../../bot/cards/runbook/preflight-card.ts';
import { setupPlanCard } from '../../../../bot/cards/runbook/setup-plan-card.ts';
import { currentSetupCard, setupResultsCard, setupRunCard } from '../../../../bot/cards/runbook/setup-run-card.ts';
import type { Run } from '../../../../bot/runs/run-model.ts';
import { setupStepIds } from '../../../../jobs/runbook-types.ts';
import { cardText } from '../../../support/fake-connector.ts';
import { preflightChecks, preflightResult, runFixture, setupPlan, setupRunResult } from '../../setup-fixtures.ts';

/** The runbook's cards at their largest stay under Teams' limit; the states show what the brief says. */

const long = (n: number) => 'x'.repeat(n);

const run = (patch: Partial<Run> = {}): Run => runFixture({ filter: { kind: 'all' }, ...patch });

describe('runbook cards', () => {
  it('stay under the card size limit with every text at its longest', () => {
    const plan = setupPlan('setup', { blockers: Array.from({ length: 20 }, () => ({ message: long(400), fix: long(600) })) });
    plan.steps = plan.steps.map((s) => ({ ...s, detail: long(300) }));
    plan.preflight = preflightChecks(Object.fromEntries(['crm-reachable', 'crm-admin-role', 'local-admin', 'graph-credentials', 'graph-permissions', 'certificate', 'certificate-servers', 'async-services'].map((id) => [id, { status: 'failed', detail: long(400), fix: long(600) }])));
    plan.blocked = false;
    const awaiting = setupPlanCard(run(), plan);
    expect(cardBytes(awaiting)).toBeLessThan(MAX_CARD_BYTES);
    plan.blocked = true;
    expect(cardBytes(setupPlanCard(run({ state: 'plan-failed' }), plan))).toBeLessThan(MAX_CARD_BYTES);
    expect(cardBytes(setupPlanCard(run({ state: 'succeeded', dryRun: true }), plan))).toBeLessThan(MAX_CARD_BYTES);
    expect(cardBytes(preflightCard(run({ kind: 'preflight', state: 'succeeded' }), preflightResult(plan.preflight)))).toBeLessThan(MAX_CARD_BYTES);

    const result = setupRunResult('setup', [...setupStepIds]);
    result.steps = result.steps.map((s) => ({ ...s, detail: long(300) }));
    result.adfsScript = long(4000);
    result.checklist = Array.from({ length: 10 }, () => long(400));
    if (result.testReport) result.testReport.failures = Array.from({ length: 20 }, (_, i) => ({ cause: `c${i}`, title: long(200), remediation: long(600), count: 1, sample: Array.from({ length: 10 }, () => `${long(60)}@contoso.com`), example: long(400) }));
    expect(cardBytes(setupResultsCard(run({ state: 'succeeded' }), result))).toBeLessThan(MAX_CARD_BYTES);
    expect(cardBytes(setupRunCard(run({ state: 'halted', steps: result.steps, error: { code: 'X', message: long(1000), hint: long(1000) } })))).toBeLessThan(MAX_CARD_BYTES);
  });

  it('a dry run of a blocked plan says what blocks a real run, without buttons', () => {
    const plan = setupPlan('setup', { blockers: [{ message: 'PROFILE_NAME is not set.', fix: 'Set PROFILE_NAME in the agent settings.' }] });
    const card = setupPlanCard(run({ state: 'succeeded', dryRun: true }), plan);
    expect(cardText(card)).toContain('What blocks a real run');
    expect(cardText(card)).toContain('Set PROFILE_NAME in the agent settings.');
    expect(card.actions).toBeUndefined();
  });

  it('the current card follows the state: approved plan, retried run, cancelled before the plan', () => {
    const plan = setupPlan('tenant');
    const approval = { decision: 'approved' as const, decidedBy: { aadObjectId: '2', name: 'Adam Approver' }, decidedAt: '2026-12-01T10:05:00.000Z' };
    expect(cardText(currentSetupCard(run({ kind: 'tenant', state: 'approved', plan, approval })))).toContain('Approved by Adam Approver');
    expect(cardText(currentSetupCard(run({ kind: 'tenant', state: 'approved', plan, approval, attempt: 2, resumedBy: { aadObjectId: '2', name: 'Adam Approver' } })))).toContain('Retried by Adam Approver (attempt 2)');
    expect(cardText(currentSetupCard(run({ kind: 'tenant', state: 'cancelled', cancelRequestedBy: { aadObjectId: '1', name: 'Olivia Operator' } })))).toContain('Cancelled by Olivia Operator before the plan arrived');
  });

  it('the profile values say when an unset "process email from" starts: when the profile is created', () => {
    const plan = setupPlan('profile');
    const unset = cardText(setupPlanCard(run({ kind: 'profile' }), plan));
    expect(unset).toContain('Process email from');
    expect(unset).toContain('when the profile is created');
    expect(unset).not.toContain('not set');
    if (!plan.profile) throw new Error('the profile plan has profile values');
    plan.profile.processEmailsReceivedAfter = '2026-12-01T09:30:00.000Z';
    expect(cardText(setupPlanCard(run({ kind: 'profile' }), plan))).not.toContain('when the profile is created');
  });

  it('the AD FS script shows exactly as written: one monospace TextRun per line, no markdown, never clipped', () => {
    const script = [
      '# 1. On the CRM server:',
      'Add-PSSnapin Microsoft.Crm.PowerShell',
      '$s = Get-CrmSetting -SettingType OAuthClaimsSettings',
      '$s.Enabled = $true',
      '',
      "Add-AdfsClient -ClientId 'a_b_c' -Name 'Dynamics *365* App for Outlook' -RedirectUri 'https://crm/crmmailapp/code_auth.aspx'",
      '',
    ].join('\r\n');
    const block = codeBlock(script) as unknown as { type: string; inlines: { type: string; text: string; fontType: string }[] };
    expect(block.type).toBe('RichTextBlock');
    expect(block.inlines).toHaveLength(6);
    expect(block.inlines.every((r) => r.type === 'TextRun' && r.fontType === 'Monospace')).toBe(true);
    expect(block.inlines[3]?.text).toBe('$s.Enabled = $true\n');
    expect(block.inlines.map((r) => r.text).join('')).toBe(script.replace(/\r\n/g, '\n').replace(/\n$/, ''));

    // At the schema's 4000 characters, in many short lines: whole (no "…"), and the card fits.
    const longest = Array.from({ length: 1000 }, (_, i) => `$v${String(i).padStart(3, '0')}`).join('\n').slice(0, 4000);
    const big = codeBlock(longest) as unknown as { inlines: { text: string }[] };
    expect(big.inlines).toHaveLength(MAX_CODE_RUNS);
    expect(big.inlines.map((r) => r.text).join('')).toBe(longest);
    const result = setupRunResult('setup', [...setupStepIds]);
    result.adfsScript = longest;
    const resultsCard = setupResultsCard(run({ state: 'succeeded' }), result);
    expect(JSON.stringify(resultsCard.body)).toContain(JSON.stringify(codeBlock(longest)));
    expect(cardText(resultsCard)).not.toContain('…');
    expect(cardBytes(resultsCard)).toBeLessThan(MAX_CARD_BYTES);
  });
});
