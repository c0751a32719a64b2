import type { Verification } from '../../../jobs/cert-types.ts';
import type { StepHandle } from '../runner.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import { type ConfiguredMailbox } from '../../jobs/mailboxes/selection.ts';
import type { RunbookEnv, RunbookStep, StepCheck } from '../step.ts';
import { mailboxes, stepDetail, throttledUpdate } from '../detail.ts';
import { testAndEnable } from '../../jobs/mailboxes/test.ts';
import { readConfiguredSelection, needsConfiguring, syncsAct, needsTest, mailboxFailure } from './mailboxes.ts';

/**
 * The mailboxes test-enable tests: the last test did not succeed, or their configuration changed
 * in this run (a test that passed with another profile proves nothing about the new one). In a plan
 * (scope setup) the mailboxes configure-mailboxes would change count as changed.
 */
function toTest(env: RunbookEnv, rows: readonly ConfiguredMailbox[], planning: boolean): ConfiguredMailbox[] {
  const profileId = env.facts.profileId;
  if (!planning && env.facts.reconfiguredAll === true) return [...rows];
  return rows.filter((r) => needsTest(r) || env.facts.reconfigured?.has(r.mailboxid.toLowerCase()) === true || (planning && env.scope === 'setup' && needsConfiguring(r, profileId)));
}

async function checkTest(env: RunbookEnv): Promise<StepCheck> {
  const rows = await readConfiguredSelection(env);
  const todo = toTest(env, rows, true).length;
  if (rows.length === 0) return { upToDate: true, detail: 'already done: no mailboxes match the selection' };
  if (todo === 0) return { upToDate: true, detail: stepDetail(`already done: all ${mailboxes(rows.length)} passed Test & Enable`) };
  return { upToDate: false, detail: stepDetail(`would Test & Enable ${todo} of ${mailboxes(rows.length)}`) };
}

const phaseText: Readonly<Record<string, string>> = { scheduling: 'scheduling', waiting: 'waiting for results', collecting: 'reading the alerts' };

async function applyTest(env: RunbookEnv, step: StepHandle) {
  const update = throttledUpdate(env, step);
  const rows = await readConfiguredSelection(env, (n) => update(`reading the selection: ${mailboxes(n)}`));
  const todo = toTest(env, rows, false);
  if (todo.length === 0) {
    const detail = stepDetail(rows.length === 0 ? 'already done: no mailboxes match the selection' : `already done: all ${mailboxes(rows.length)} passed Test & Enable`);
    return { detail, wrote: false, changed: false };
  }
  // The Test & Enable machinery reports job progress; in a run it becomes the step's running detail.
  let lastPhase = '';
  const ctx: JobContext = {
    ...env.ctx,
    report: (p) => {
      const phase = phaseText[p.phase] ?? p.phase;
      update(`Test & Enable of ${mailboxes(todo.length)}: ${phase} ${p.done} of ${p.total}`, phase !== lastPhase);
      lastPhase = phase;
    },
  };
  const outcome = await testAndEnable(todo, ctx, { requireActFor: new Set(todo.filter(syncsAct).map((r) => r.mailboxid)) });
  const testReport: Verification = {
    selected: outcome.selected,
    succeeded: outcome.succeeded,
    failed: outcome.failed,
    noResult: outcome.noResult,
    failures: outcome.failures,
  };
  env.ctx.logger.info({ selected: testReport.selected, succeeded: testReport.succeeded, failed: testReport.failed, noResult: testReport.noResult }, 'Test & Enable finished');
  const bad = testReport.failed + testReport.noResult;
  if (bad > 0) {
    const waited = Math.round(env.ctx.settings.TEST_TIMEOUT_MS / 1000);
    const extra = [
      testReport.noResult > 0 ? `${testReport.noResult} had no result within ${waited} s (are the asynchronous services running?)` : '',
      `${testReport.succeeded} succeeded`,
    ].filter(Boolean).join('; ');
    throw mailboxFailure('TEST_ENABLE_FAILED', { failed: bad, of: todo.length, verb: 'failed Test & Enable', extra }, testReport.failures, { testReport });
  }
  return { detail: stepDetail(`Test & Enable succeeded for ${testReport.succeeded} of ${mailboxes(rows.length)}`), wrote: true, changed: false, testReport };
}

/** test-enable (procedure.md §7): any failure (or no result) halts the run with the grouped causes. */
export const testEnableStep: RunbookStep = { id: 'test-enable', check: checkTest, apply: applyTest };
