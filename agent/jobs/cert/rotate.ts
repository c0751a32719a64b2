import { rotationStepIds, type CertRotateResult } from '../../../jobs/cert-types.ts';
import type { PayloadOf } from '../../../jobs/job-types.ts';
import { requireCerts, type ReadyCerts } from '../../runtime/cert-requirements.ts';
import { runGuardedChange } from '../../runtime/guarded-change.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { CertRunEnv } from '../../steps/cert/common.ts';
import { StepRunner, runSteps } from '../../steps/runner.ts';
import { rotationSteps } from '../../steps/table.ts';

/**
 * `cert-rotate`: the approved rotation (docs/cert-rotation.md, "Steps"), or its resume: the step
 * runner over the rotation's steps (steps/table.ts). Every step checks, then changes, and is
 * recorded in the step journal; a resumed attempt skips the steps done. A failed step throws (the
 * job halts with the step states); a failed verification returns outcome 'verification-failed'
 * (the old certificate stays everywhere, for a rollback).
 */
export async function rotateCertificate(payload: PayloadOf<'cert-rotate'>, ctx: JobContext): Promise<CertRotateResult> {
  const certs = requireCerts(ctx, ['servers', 'pfx', 'graph']);
  return runGuardedChange(ctx, certs, payload, (guarded) => rotate(payload, guarded, certs));
}

async function rotate(payload: PayloadOf<'cert-rotate'>, ctx: JobContext, certs: ReadyCerts): Promise<CertRotateResult> {
  const started = ctx.now();
  const runner = await StepRunner.start(ctx, certs.journal, payload.runId, payload.attempt, rotationStepIds);
  const env: CertRunEnv = { ctx, recorded: (id) => runner.recorded(id), facts: {} };
  await runSteps(runner, rotationSteps({ certs, facts: env.facts, run: payload }), env);
  const passed = env.facts.passed ?? true;

  const result: CertRotateResult = {
    type: 'cert-rotate',
    outcome: passed ? 'rotated' : 'verification-failed',
    newThumbprint: payload.newThumbprint,
    oldThumbprint: payload.oldThumbprint,
    steps: runner.snapshot(),
    verification: env.facts.verification ?? null,
    durationMs: Math.max(0, Math.round(ctx.now() - started)),
  };
  ctx.logger.info({ outcome: result.outcome, newThumbprint: result.newThumbprint, attempt: payload.attempt }, 'certificate rotation finished');
  return result;
}
