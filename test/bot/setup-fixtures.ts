import type { Run } from '../../bot/runs/run-model.ts';
import type { StepState } from '../../jobs/cert-types.ts';
import type { PreflightCheck, PreflightResult, RunbookScope, SetupPlanResult, SetupRunResult } from '../../jobs/runbook-types.ts';
import { scopeStepIds } from '../../jobs/runbook-types.ts';

/** Results the agent would send for the runbook's jobs (bot tests). */

export const TENANT_ID = '0b5c3a1e-7d2f-4c58-9a61-3e9f2b7c4d10';
export const CERT_THUMBPRINT = 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678';

export function preflightChecks(overrides: Partial<Record<PreflightCheck['id'], Partial<PreflightCheck>>> = {}): PreflightCheck[] {
  const base: PreflightCheck[] = [
    { id: 'crm-reachable', status: 'ok', detail: 'WhoAmI answered as CONTOSO\\crmadmin' },
    { id: 'crm-admin-role', status: 'ok', detail: 'System Administrator' },
    { id: 'local-admin', status: 'ok', detail: 'member of BUILTIN\\Administrators' },
    { id: 'graph-credentials', status: 'ok', detail: 'token for tenant contoso.onmicrosoft.com' },
    { id: 'graph-permissions', status: 'ok', detail: 'Application.ReadWrite.All, Organization.Read.All' },
    { id: 'certificate', status: 'ok', detail: 'RSA 2048, SHA-256, KeySpec 1' },
    { id: 'certificate-servers', status: 'warning', detail: 'not on CRMAPP02 yet', fix: 'Nothing: the runbook imports it.' },
    { id: 'async-services', status: 'ok', detail: 'running on CRMAPP01, CRMAPP02' },
  ];
  return base.map((c) => ({ ...c, ...overrides[c.id] }));
}

export function preflightResult(checks = preflightChecks()): PreflightResult {
  return { type: 'preflight', checks, ok: checks.every((c) => c.status !== 'failed') };
}

/** A plan of `scope`: every step pending ("would …") unless listed as done. */
export function setupPlan(scope: RunbookScope, options: { done?: readonly string[]; blockers?: SetupPlanResult['blockers']; mailboxes?: number } = {}): SetupPlanResult {
  const done = new Set(options.done ?? []);
  const steps = scopeStepIds[scope].map((id) => done.has(id)
    ? { id, state: 'done' as const, detail: `${id} is as wanted` }
    : id === 'adfs'
      ? { id, state: 'skipped' as const, detail: 'SETUP_ADFS is off' }
      : { id, state: 'pending' as const, detail: `would change ${id}` });
  const changes = steps.filter((s) => s.state === 'pending').length;
  const blockers = options.blockers ?? [];
  return {
    type: 'setup-plan',
    scope,
    steps,
    ...(scope === 'setup' ? { preflight: preflightChecks() } : {}),
    changes,
    blocked: blockers.length > 0,
    blockers,
    mailboxes: scope === 'setup' || scope === 'configure' ? (options.mailboxes ?? 540) : 0,
    tenantId: scope === 'setup' || scope === 'tenant' ? TENANT_ID : null,
    certThumbprint: scope === 'setup' ? CERT_THUMBPRINT : null,
    profile: scope === 'setup' || scope === 'profile'
      ? {
          name: 'Exchange Online',
          description: 'Server-side sync with Exchange Online',
          useDefaultTenantId: true,
          tenantId: null,
          autodiscover: true,
          incomingUrl: null,
          outgoingUrl: null,
          processEmailsReceivedAfter: null,
          minPollingIntervalMinutes: 5,
          moveUndeliveredEmails: true,
          owner: 'CONTOSO\\crmadmin',
        }
      : null,
  };
}

/** Step states of a run of `scope`: the first `done` done, the next `state`, the rest pending. */
export function runSteps(scope: RunbookScope, done: number, next: StepState['state'] = 'pending', detail?: string): StepState[] {
  return scopeStepIds[scope].map((id, i) => i < done
    ? { id, state: 'done' as const }
    : i === done
      ? { id, state: next, ...(detail ? { detail } : {}) }
      : { id, state: 'pending' as const });
}

export function setupRunResult(scope: RunbookScope, changed: SetupRunResult['changed'] = ['tenant-id', 'email-profile']): SetupRunResult {
  return {
    type: 'setup-run',
    scope,
    steps: scopeStepIds[scope].map((id) => ({ id, state: id === 'adfs' ? ('skipped' as const) : ('done' as const), ...(changed.includes(id) ? { detail: `changed ${id}` } : {}) })),
    changed,
    testReport: scope === 'setup'
      ? {
          selected: 540,
          succeeded: 538,
          failed: 2,
          noResult: 0,
          failures: [{ cause: 'owner-privileges', title: 'The mailbox owner lacks privileges', count: 2, remediation: 'Give the owners the Send Email as Another User privilege.', sample: ['a@contoso.com', 'b@contoso.com'] }],
        }
      : null,
    adfsScript: null,
    checklist: scope === 'setup' ? ['Check the first emails arrive in CRM within 15 minutes.'] : [],
    durationMs: 93_000,
  };
}

/** A stored run as the cards get it (kind, state and more from `patch`). */
export function runFixture(patch: Partial<Run> = {}): Run {
  return {
    runId: 'abcdefghij',
    deployment: 'contoso',
    kind: 'setup',
    state: 'awaiting-approval',
    requester: { aadObjectId: '11111111-1111-1111-1111-111111111111', name: 'Olivia Operator' },
    conversation: { bot: { id: 'b' }, channelId: 'msteams', conversation: { id: 'c' }, serviceUrl: 'https://smba.example.com/' },
    createdAt: '2026-12-01T10:00:00.000Z',
    updatedAt: '2026-12-01T10:00:00.000Z',
    attempt: 1,
    progressSeq: -1,
    lastPostedSeq: -1,
    lastPostedAt: 0,
    finalPostedSeq: -1,
    resultsSentSeq: -1,
    ...patch,
  };
}
