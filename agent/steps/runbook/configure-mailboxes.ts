import { SetupError } from '../../../core/setup-error.ts';
import { ActDeliveryMethod, IncomingDeliveryMethod, OutgoingDeliveryMethod } from '../../../jobs/crm-values.ts';
import { odataGuid } from '../../../jobs/mailbox-filter.ts';
import { mailboxesWithEwsDisabled, enableMailboxEws } from '../../adapters/exchange/ews.ts';
import type { StepHandle } from '../runner.ts';
import { FailureGroups } from '../../jobs/mailboxes/failure-groups.ts';
import { patchInBatches } from '../../jobs/mailboxes/patch-in-batches.ts';
import type { RunbookEnv, RunbookStep, StepCheck } from '../step.ts';
import { runbookProfileId } from './email-profile.ts';
import { mailboxes, stepDetail, throttledUpdate } from '../detail.ts';
import { readConfiguredSelection, needsConfiguring, mailboxFailure, reconfiguredData, readBack } from './mailboxes.ts';

async function checkConfigure(env: RunbookEnv): Promise<StepCheck> {
  const profileId = await runbookProfileId(env);
  if (!profileId && env.scope !== 'setup') {
    const message = `There is no email server profile '${env.profile.name}' of type Exchange Online (Hybrid) to configure the mailboxes with.`;
    return { upToDate: false, detail: stepDetail(`cannot go on: ${message}`), blocker: { message, fix: 'Create it first with `@setup profile create` (or `@setup run setup`), or set PROFILE_NAME to the profile to use.' } };
  }
  const rows = await readConfiguredSelection(env);
  const todo = rows.filter((r) => needsConfiguring(r, profileId)).length;
  if (rows.length === 0) return { upToDate: true, detail: 'already done: no mailboxes match the selection' };
  const ews = await mailboxesWithEwsDisabled(env.ctx, rows);
  const ewsText = ews.unchecked !== undefined ? `; EWS of the mailboxes not checked (${ews.unchecked})` : ews.rows.length > 0 ? `; would set EwsEnabled True on ${mailboxes(ews.rows.length)} in Exchange Online` : '';
  if (todo === 0 && ews.rows.length === 0) return { upToDate: true, detail: stepDetail(`already done: all ${mailboxes(rows.length)}${ewsText}`) };
  const created = profileId ? '' : ` (the profile is created by the email-profile step)`;
  const crmText = todo > 0 ? `would configure ${todo} of ${mailboxes(rows.length)} with profile '${env.profile.name}' and server-side sync${created}` : `all ${mailboxes(rows.length)} are configured in CRM`;
  return { upToDate: false, detail: stepDetail(`${crmText}${ewsText}`) };
}

async function applyConfigure(env: RunbookEnv, step: StepHandle) {
  const profileId = await runbookProfileId(env);
  if (!profileId) {
    throw new SetupError('STEP_FAILED', `The email server profile '${env.profile.name}' is not known to this run, so the mailboxes cannot be configured with it.`, {
      hint: 'Create the profile first (`@setup profile create`, or the email-profile step of `@setup run setup`), then configure the mailboxes.',
    });
  }
  const update = throttledUpdate(env, step);
  const rows = await readConfiguredSelection(env, (n) => update(`reading the selection: ${mailboxes(n)}`));
  const todo = rows.filter((r) => needsConfiguring(r, profileId));
  const ews = rows.length === 0 ? { rows: [] } : await mailboxesWithEwsDisabled(env.ctx, rows);
  const ewsNote = ews.unchecked !== undefined ? `; EWS of the mailboxes not checked (${ews.unchecked})` : '';
  if (todo.length === 0 && ews.rows.length === 0) {
    // An earlier attempt may have configured some before it failed: they stay in this step's data.
    return { detail: stepDetail(rows.length === 0 ? 'already done: no mailboxes match the selection' : `already done: all ${mailboxes(rows.length)}${ewsNote}`), wrote: false, changed: false, data: reconfiguredData(env.facts) };
  }
  const failures = new FailureGroups();
  const configured = new Set<string>();
  if (todo.length > 0) {
    let done = 0;
    update(`configuring 0 of ${mailboxes(todo.length)}`, true);
    await patchInBatches(
      env.ctx,
      todo,
      {
        'emailserverprofile@odata.bind': `/emailserverprofiles(${odataGuid(profileId)})`,
        incomingemaildeliverymethod: IncomingDeliveryMethod.ServerSideSync,
        outgoingemaildeliverymethod: OutgoingDeliveryMethod.ServerSideSync,
        actdeliverymethod: ActDeliveryMethod.ServerSideSync,
      },
      {
        onOutcome: (outcome) => {
          done += 1;
          if (outcome.ok) configured.add(outcome.target.mailboxid);
          else failures.add(outcome.target.emailaddress || outcome.target.mailboxid, outcome.error ?? 'failed');
          update(`configured ${configured.size} of ${mailboxes(todo.length)}${failures.total > 0 ? `, ${failures.total} failed` : ''}`, done === todo.length);
        },
      },
    );
  }
  // Exchange Online refuses EWS for a mailbox whose own EwsEnabled is false, whatever CRM says.
  let ewsEnabled = 0;
  if (ews.rows.length > 0) {
    update(`setting EwsEnabled True on ${mailboxes(ews.rows.length)} in Exchange Online`, true);
    const outcome = await enableMailboxEws(env.ctx, ews.rows.map((r) => r.emailaddress));
    const enabled = new Set(outcome.enabled.map((a) => a.toLowerCase()));
    for (const row of ews.rows) if (enabled.has(row.emailaddress.toLowerCase())) configured.add(row.mailboxid);
    for (const failed of outcome.failed) failures.add(failed.address, `Set-CASMailbox -EwsEnabled $true failed in Exchange Online: ${failed.message}`);
    ewsEnabled = outcome.enabled.length;
  }
  for (const id of configured) (env.facts.reconfigured ??= new Set()).add(id.toLowerCase());
  // Kept also when some failed: the next attempt's test-enable tests these (their last test was with the old settings).
  step.keep(reconfiguredData(env.facts));
  await readBack(env, configured, (r) => needsConfiguring(r, profileId), 'configured');
  env.ctx.logger.info({ selected: rows.length, configured: configured.size, ewsEnabled, failed: failures.total }, 'mailboxes configured');
  if (failures.total > 0) {
    throw mailboxFailure('STEP_FAILED', { failed: failures.total, of: new Set([...todo, ...ews.rows].map((r) => r.mailboxid)).size, verb: 'could not be configured', extra: `${configured.size} were configured` }, failures.toArray(), {
      failures: failures.toArray(),
      configured: configured.size,
    });
  }
  const ewsText = ewsEnabled > 0 ? `; set EwsEnabled True on ${mailboxes(ewsEnabled)} in Exchange Online` : ewsNote;
  return { detail: stepDetail(`configured ${todo.length} of ${mailboxes(rows.length)}${ewsText}`), wrote: true, changed: false, data: reconfiguredData(env.facts) };
}

/** configure-mailboxes (procedure.md §5). */
export const configureMailboxesStep: RunbookStep = { id: 'configure-mailboxes', check: checkConfigure, apply: applyConfigure };
