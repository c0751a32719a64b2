import { isSetupError } from '../../../core/setup-error.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { hasMailboxSteps, scopeStepIds, type RunbookStepPlan, type SetupPlanResult, type SetupStepId } from '../../../jobs/runbook-types.ts';
import { activeMailboxAddresses, checkEwsAccess } from '../../adapters/exchange/ews.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { describeCheck, runPreflight, type PreflightOutcome } from './preflight.ts';
import { ALL_MAILBOXES, requireStableFilter, runbookEnv, selectionCount, wantedProfile } from './env.ts';
import type { RunbookFacts } from '../../steps/step.ts';
import { RESTART_TRIGGERS, runbookSteps } from '../../steps/table.ts';
import { certServicesOf, type ChosenCert } from '../../steps/runbook/certificate.ts';
import { requireRunbook } from '../../steps/runbook/tenant-id.ts';

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const reason = (error: unknown) => (error instanceof Error ? error.message : String(error));

type Blocker = SetupPlanResult['blockers'][number];

/**
 * `setup-plan` (read-only): `run setup [--dry-run]`, `profile show|create`, `tenant show|set`,
 * `configure mailboxes`. For scope setup the preflight runs first; then every step's check in order,
 * with the facts filled as it goes (the CRM user, the tenant, the profile once it exists). A step
 * is pending (would change: its detail says what), done (already done) or skipped (not part of
 * this run). Blocked when a preflight check fails or a step cannot run as configured.
 */
export async function planSetup(payload: PayloadOf<'setup-plan'>, ctx: JobContext): Promise<SetupPlanResult> {
  const settings = requireRunbook(ctx);
  const { scope } = payload;
  requireStableFilter(scope, payload.filter);
  const filter = payload.filter ?? ALL_MAILBOXES;
  const facts: RunbookFacts = {};
  const blockers: Blocker[] = [];
  const block = (message: string, fix: string) => {
    const b = { message: clip(message, 400), fix: clip(fix, 600) };
    if (!blockers.some((x) => x.message === b.message)) blockers.push(b);
  };

  let preflight: PreflightOutcome | undefined;
  let chosen: ChosenCert | null = null;
  if (scope === 'setup') {
    preflight = await runPreflight(ctx);
    for (const check of preflight.checks) if (check.status === 'failed') block(describeCheck(check), check.fix ?? 'Fix it, then ask for the plan again.');
    if (preflight.whoAmI) facts.crmUserId = preflight.whoAmI.UserId;
    chosen = preflight.choice?.cert && preflight.choice.cert.errors.length === 0 ? preflight.choice.cert : null;
  } else {
    facts.crmUserId = (await ctx.crm.whoAmI()).UserId;
  }

  const profile = await wantedProfile(ctx, settings, facts.crmUserId);
  let mailboxes = 0;
  if (hasMailboxSteps(scope)) {
    try {
      mailboxes = await selectionCount(ctx, filter);
    } catch (error) {
      block(`The mailbox selection cannot be read: ${reason(error)}`, (isSetupError(error) ? error.hint : undefined) ?? 'Check the filter, then ask for the plan again.');
    }
  }

  const ids = scopeStepIds[scope];
  const pendingTriggers = new Set<SetupStepId>();
  const steps = runbookSteps(
    ids.filter((id) => !(id === 'adfs' && settings.SETUP_ADFS === 'off')).filter((id) => chosen !== null || !isCertStep(id)),
    { ...(chosen ? { cert: { certs: certServicesOf(ctx), chosen } } : {}), restartOwed: () => pendingTriggers.size > 0, ...(preflight ? { preflight } : {}) },
  );
  const env = runbookEnv(ctx, scope, filter, profile, facts);
  const planned: RunbookStepPlan[] = [];
  for (const id of ids) {
    if (id === 'adfs' && settings.SETUP_ADFS === 'off') {
      planned.push({ id, state: 'skipped', detail: 'SETUP_ADFS=off: the AD FS part is not asked for' });
      continue;
    }
    const step = steps.find((s) => s.id === id);
    if (!step) {
      planned.push({ id, state: 'pending', detail: 'cannot be checked: there is no usable certificate (see the preflight)' });
      continue;
    }
    try {
      const check = await step.check(env);
      if (check.blocker) block(check.blocker.message, check.blocker.fix);
      if (!check.upToDate && RESTART_TRIGGERS.has(id)) pendingTriggers.add(id);
      planned.push({ id, state: check.upToDate ? 'done' : 'pending', detail: clip(check.detail, 300) });
    } catch (error) {
      const e = isSetupError(error) ? error : undefined;
      block(`${id}: ${reason(error)}`, e?.hint ?? 'Fix it, then ask for the plan again.');
      planned.push({ id, state: 'pending', detail: clip(`cannot be checked: ${reason(error)}`, 300) });
    }
  }

  // What Exchange Online says about EWS for CRM: the preflight read it for scope setup; scope ews reads it here.
  const ews = preflight?.ews ?? (scope === 'ews' ? await checkEwsAccess(ctx, await activeMailboxAddresses(ctx)) : undefined);

  const result: SetupPlanResult = {
    type: 'setup-plan',
    scope,
    steps: planned,
    ...(preflight ? { preflight: preflight.checks } : {}),
    // The preflight changes nothing: a failing one is a blocker, not a change.
    changes: planned.filter((s) => s.state === 'pending' && s.id !== 'preflight').length,
    blocked: blockers.length > 0,
    blockers: blockers.slice(0, 20),
    mailboxes,
    tenantId: facts.tenantId ?? preflight?.tenantId ?? null,
    certThumbprint: chosen?.summary.thumbprint ?? null,
    profile: scope === 'setup' || scope === 'profile' ? stripOwnerId(profile) : null,
    ...(ews ? { ews } : {}),
  };
  ctx.logger.info({ runId: payload.runId, scope, changes: result.changes, blocked: result.blocked, mailboxes }, 'runbook planned');
  return result;
}

const CERT_STEPS: ReadonlySet<SetupStepId> = new Set(['import', 'grant-key-access', 'register-crm', 'entra-key-credential', 's2s-settings', 'restart-services']);
export const isCertStep = (id: SetupStepId) => CERT_STEPS.has(id);

function stripOwnerId<T extends { ownerId: string | null }>(profile: T): Omit<T, 'ownerId'> {
  const { ownerId: _ownerId, ...rest } = profile;
  return rest;
}
