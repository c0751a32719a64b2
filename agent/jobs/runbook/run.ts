import { SetupError } from '../../../core/setup-error.ts';
import { verificationSchema, type Verification } from '../../../jobs/cert-types.ts';
import { exceedsPlan, type PayloadOf } from '../../../jobs/job-types.ts';
import { hasMailboxSteps, runbookStepIds, scopeStepIds, type SetupRunResult, type SetupStepId } from '../../../jobs/runbook-types.ts';
import { ADFS_CHECKLIST_ENTRY, ADFS_SCRIPT_KEY } from '../../steps/runbook/adfs.ts';
import { withChangeLock } from '../../runtime/change-lock.ts';
import { runGuardedChange } from '../../runtime/guarded-change.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import { StepRunner, type StepOutcome } from '../../steps/runner.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { ALL_MAILBOXES, requireStableFilter, runbookEnv, selectionCount, wantedProfile } from './env.ts';
import type { RunbookFacts } from '../../steps/step.ts';
import { RESTART_TRIGGERS, runbookSteps } from '../../steps/table.ts';
import { chooseCertificate, type ChosenCert } from '../../steps/runbook/certificate.ts';
import { RECONFIGURED_KEY, restoreReconfigured } from '../../steps/runbook/mailboxes.ts';
import { requireRunbook } from '../../steps/runbook/tenant-id.ts';

/** The journal data keys of the facts a later step needs (a resumed attempt skips the step that found them). */
const FACT_KEYS = ['crmUserId', 'tenantId', 'profileId'] as const satisfies readonly (keyof RunbookFacts)[];
const TEST_REPORT_KEY = 'testReport';

const TENANT_RESTART_ENTRY =
  "Restart MSCRMAsyncService and 'MSCRMAsyncService$maintenance' on every async server (or run setup) so they pick up the new S2STenantId.";

const isSetupStepId = (id: string): id is SetupStepId => (runbookStepIds as readonly string[]).includes(id);

/**
 * `setup-run`: the approved runbook run (docs/runbook.md), or its resume. Refuses PLAN_CHANGED when
 * the world moved under the plan (another tenant, another certificate, a selection grown beyond the
 * plan). Scope setup may change the S2S certificate, so it runs under the certificate-change guard
 * (two-person rule, the deployment's certificate lock); the smaller scopes take the lock only. Every step checks, changes what differs and
 * reads back, recorded in the step journal: a resumed or restarted attempt skips the steps done.
 * A failed step throws (the failed report carries the step states and the known remediation).
 */
export async function runSetup(payload: PayloadOf<'setup-run'>, ctx: JobContext): Promise<SetupRunResult> {
  requireRunbook(ctx);
  requireStableFilter(payload.scope, payload.filter);
  if (payload.scope !== 'setup') {
    // The smaller scopes change what run setup changes (the profile, the tenant id, the mailboxes):
    // one at a time per deployment, under the same lock; the two-person rule is scope setup's.
    const lock = ctx.certs?.lock;
    if (!lock) throw new SetupError('INTERNAL', 'This agent was started without its certificate-change lock.');
    return withChangeLock(ctx, lock, { type: 'setup-run', runId: payload.runId, deployment: payload.deployment, attempt: payload.attempt }, (guarded) => execute(payload, guarded, null));
  }
  const certs = requireCerts(ctx, ['servers', 'graph']);
  return runGuardedChange(
    ctx,
    certs,
    {
      type: 'setup-run',
      runId: payload.runId,
      deployment: payload.deployment,
      requestedBy: payload.requestedBy,
      approvedBy: payload.approvedBy,
      attempt: payload.attempt,
      ...(payload.resumedBy === undefined ? {} : { resumedBy: payload.resumedBy }),
    },
    (guarded) => execute(payload, guarded, certs),
  );
}

const planChanged = (message: string, hint: string) => new SetupError('PLAN_CHANGED', message, { hint, retryable: false });
const NEW_PLAN = 'What was approved is what runs: ask for a new plan (@setup run setup) and have it approved.';

async function execute(payload: PayloadOf<'setup-run'>, ctx: JobContext, certs: ReadyCerts | null): Promise<SetupRunResult> {
  const started = ctx.now();
  const settings = requireRunbook(ctx);
  const { scope } = payload;
  const filter = payload.filter ?? ALL_MAILBOXES;
  const journal = ctx.certs?.journal;
  if (!journal) throw new SetupError('INTERNAL', 'This agent was started without its step journal.');

  // ---- what the approver saw ----
  if (payload.tenantId !== null) {
    const tenantId = (await requireCerts(ctx, ['graph']).graph().getTenantId()).toLowerCase();
    if (tenantId !== payload.tenantId.toLowerCase()) {
      throw planChanged(`Microsoft Graph now answers for the tenant ${tenantId}, not the ${payload.tenantId} the plan showed.`, `Check GRAPH_TENANT_ID on the agent. ${NEW_PLAN}`);
    }
  }
  let chosen: ChosenCert | null = null;
  if (certs) {
    const choice = await chooseCertificate(ctx, certs);
    if (!choice.cert || choice.cert.errors.length > 0) {
      throw new SetupError('CERT_REQUIREMENTS', choice.problem?.message ?? 'There is no usable certificate.', { hint: choice.problem?.fix ?? 'Set CERT_DIR and CERT_NEW_PFX on the agent.' });
    }
    if (choice.cert.summary.thumbprint !== payload.certThumbprint) {
      throw planChanged(`The runbook would now use the certificate ${choice.cert.summary.thumbprint}, not the ${payload.certThumbprint ?? 'none'} the plan showed.`, `Someone changed the registered certificate or CERT_NEW_PFX since the plan. ${NEW_PLAN}`);
    }
    chosen = choice.cert;
  }
  if (hasMailboxSteps(scope)) {
    const count = await selectionCount(ctx, filter);
    if (exceedsPlan(payload.plannedMailboxes, count)) {
      throw planChanged(`The selection now matches ${count} mailboxes; the plan showed ${payload.plannedMailboxes}.`, NEW_PLAN);
    }
  }

  // ---- the steps ----
  const ids = scopeStepIds[scope];
  const runner = await StepRunner.start(ctx, journal, payload.runId, payload.attempt, ids, { restartTriggers: RESTART_TRIGGERS });
  const facts: RunbookFacts = {};
  for (const id of ids) {
    for (const key of FACT_KEYS) {
      const value = runner.recorded(id)?.data?.[key];
      if (value) facts[key] = value;
    }
  }
  // What configure-mailboxes changed in an earlier attempt, also one where it then failed.
  restoreReconfigured(facts, runner.recorded('configure-mailboxes')?.data?.[RECONFIGURED_KEY]);
  const profile = await wantedProfile(ctx, settings, facts.crmUserId ?? (await ctx.crm.whoAmI()).UserId);
  const env = runbookEnv(ctx, scope, filter, profile, facts);
  const runnable = ids.filter((id) => !(id === 'adfs' && settings.SETUP_ADFS === 'off'));
  const steps = runbookSteps(runnable, { ...(certs && chosen ? { cert: { certs, chosen } } : {}), restartOwed: () => runner.restartOwed() });

  let testReport: Verification | null = null;
  let adfsScript: string | null = null;
  for (const id of ids) {
    const step = steps.find((s) => s.id === id);
    if (!step) {
      runner.skip(id, 'SETUP_ADFS=off: the AD FS part is not asked for');
      continue;
    }
    const outcome: StepOutcome = await runner.run(id, async (update) => {
      const out = await step.apply(env, update);
      const data: Record<string, string> = { ...out.data };
      for (const key of FACT_KEYS) {
        const value = facts[key];
        if (value) data[key] = value;
      }
      if (out.testReport) data[TEST_REPORT_KEY] = JSON.stringify(out.testReport);
      const { testReport: _report, ...rest } = out;
      return { ...rest, data };
    });
    for (const key of FACT_KEYS) {
      const value = outcome.data?.[key];
      if (value && !facts[key]) facts[key] = value;
    }
    const report = outcome.data?.[TEST_REPORT_KEY];
    if (report) testReport = parseReport(report) ?? testReport;
    const script = outcome.data?.[ADFS_SCRIPT_KEY];
    if (script) adfsScript = script;
  }

  const changed = runner.wroteSteps().filter(isSetupStepId);
  const checklist: string[] = [];
  if (adfsScript) checklist.push(ADFS_CHECKLIST_ENTRY);
  if (scope === 'tenant' && changed.includes('tenant-id')) checklist.push(TENANT_RESTART_ENTRY);
  const result: SetupRunResult = {
    type: 'setup-run',
    scope,
    steps: runner.snapshot(),
    changed,
    testReport,
    adfsScript,
    checklist,
    durationMs: Math.max(0, Math.round(ctx.now() - started)),
  };
  ctx.logger.info({ runId: payload.runId, scope, attempt: payload.attempt, changed }, 'runbook run finished');
  return result;
}

function parseReport(json: string): Verification | null {
  try {
    const parsed = verificationSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
