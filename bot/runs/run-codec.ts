import { z } from 'zod';
import { mailboxFilterSchema } from '../../jobs/mailbox-filter.ts';
import { certFileNameSchema } from '../../jobs/cert-types.ts';
import { jobResultSchema, progressSchema, runIdSchema } from '../../jobs/job-types.ts';
import { touchesRegistration } from './cert-rules.ts';
import { checklistConfirmationSchema, conversationRefSchema, decisionSchema, personSchema, rollbackTargetSchema, runErrorSchema, runPlanSchema, runStates, stepsSchema, type NewRun, type Run, type RunPatch } from './run-model.ts';
import { runKindSchema } from './run-kinds.ts';

/**
 * The run's Redis hash `<prefix>:run:<runId>`: field names and encodings (JSON for objects, '1' for
 * flags, epoch ms for expiresAtMs). A run stored by an earlier version must still decode: fields are
 * only ever added, never renamed.
 */

/** The hash fields of a new run (`at`: its creation time, ISO). */
export function encodeNewRun(run: NewRun, at: string): Record<string, string> {
  const fields: Record<string, string> = {
    runId: run.runId,
    deployment: run.deployment,
    kind: run.kind,
    state: run.state,
    requester: JSON.stringify(personSchema.parse(run.requester)),
    conversation: JSON.stringify(conversationRefSchema.parse(run.conversation)),
    createdAt: at,
    updatedAt: at,
    progressSeq: '-1',
    lastPostedSeq: '-1',
    lastPostedAt: '0',
    finalPostedSeq: '-1',
    resultsSentSeq: '-1',
  };
  if (run.filter) fields['filter'] = JSON.stringify(mailboxFilterSchema.parse(run.filter));
  fields['attempt'] = '1';
  if (run.certFile !== undefined) fields['certFile'] = certFileNameSchema.parse(run.certFile);
  if (run.parentRunId !== undefined) fields['parentRunId'] = runIdSchema.parse(run.parentRunId);
  if (run.rollback !== undefined) fields['rollback'] = JSON.stringify(rollbackTargetSchema.parse(run.rollback));
  if (run.dryRun === true) fields['dryRun'] = '1';
  Object.assign(fields, Object.fromEntries(pairsOf(encodePatch({
    ...(run.plan ? { plan: run.plan } : {}),
    ...(run.steps ? { steps: run.steps } : {}),
    ...(run.expiresAtMs !== undefined ? { expiresAt: run.expiresAtMs } : {}),
  }))));
  return fields;
}

export function encodePatch(patch: RunPatch): string[] {
  const pairs: string[] = [];
  if (patch.cardActivityId !== undefined) pairs.push('cardActivityId', patch.cardActivityId);
  if (patch.plan !== undefined) pairs.push('plan', JSON.stringify(runPlanSchema.parse(patch.plan)));
  if (patch.steps !== undefined) {
    pairs.push('steps', JSON.stringify(stepsSchema.parse(patch.steps)));
    // Sticky: written with the steps (same HSETs), never cleared by steps that no longer show it.
    if (touchesRegistration(patch.steps)) pairs.push('registrationTouched', '1');
  }
  if (patch.resumedBy !== undefined) pairs.push('resumedBy', JSON.stringify(personSchema.parse(patch.resumedBy)));
  if (patch.supersededBy !== undefined) pairs.push('supersededBy', JSON.stringify(personSchema.parse(patch.supersededBy)));
  if (patch.expiresAt !== undefined) pairs.push('expiresAtMs', String(patch.expiresAt));
  if (patch.approval !== undefined) pairs.push('approval', JSON.stringify(decisionSchema.parse(patch.approval)));
  if (patch.result !== undefined) pairs.push('result', JSON.stringify(jobResultSchema.parse(patch.result)));
  if (patch.error !== undefined) pairs.push('error', JSON.stringify(runErrorSchema.parse(patch.error)));
  if (patch.lastPostedSeq !== undefined) pairs.push('lastPostedSeq', String(patch.lastPostedSeq));
  if (patch.lastPostedAt !== undefined) pairs.push('lastPostedAt', String(patch.lastPostedAt));
  if (patch.postFailure !== undefined) pairs.push('postFailure', patch.postFailure.slice(0, 500));
  if (patch.checklist !== undefined) pairs.push('checklist', JSON.stringify(checklistConfirmationSchema.parse(patch.checklist)));
  if (patch.cancelRequestedBy !== undefined) pairs.push('cancelRequestedBy', JSON.stringify(personSchema.parse(patch.cancelRequestedBy)));
  return pairs;
}

function pairsOf(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] ?? '', flat[i + 1] ?? '']);
  return out;
}

function json<S extends z.ZodTypeAny>(schema: S, value: string | undefined): z.output<S> | undefined {
  if (value === undefined || value === '') return undefined;
  return schema.parse(JSON.parse(value)) as z.output<S>;
}

export function decodeRun(h: Record<string, string>): Run {
  const run: Run = {
    runId: h['runId'] ?? '',
    deployment: h['deployment'] ?? '',
    kind: runKindSchema.parse(h['kind']),
    state: z.enum(runStates).parse(h['state']),
    requester: personSchema.parse(JSON.parse(h['requester'] ?? '{}')),
    conversation: conversationRefSchema.parse(JSON.parse(h['conversation'] ?? '{}')),
    createdAt: h['createdAt'] ?? '',
    updatedAt: h['updatedAt'] ?? '',
    progressSeq: Number(h['progressSeq'] ?? '-1'),
    lastPostedSeq: Number(h['lastPostedSeq'] ?? '-1'),
    lastPostedAt: Number(h['lastPostedAt'] ?? '0'),
    finalPostedSeq: Number(h['finalPostedSeq'] ?? '-1'),
    resultsSentSeq: Number(h['resultsSentSeq'] ?? '-1'),
    attempt: Number(h['attempt'] ?? '1') || 1,
  };
  const filter = json(mailboxFilterSchema, h['filter']);
  if (filter) run.filter = filter;
  if (h['cardActivityId']) run.cardActivityId = h['cardActivityId'];
  const plan = json(runPlanSchema, h['plan']);
  if (plan) run.plan = plan;
  if (h['parentRunId']) run.parentRunId = h['parentRunId'];
  if (h['certFile']) run.certFile = h['certFile'];
  const rollback = json(rollbackTargetSchema, h['rollback']);
  if (rollback) run.rollback = rollback;
  const steps = json(stepsSchema, h['steps']);
  if (steps) run.steps = steps;
  if (h['registrationTouched'] === '1') run.registrationTouched = true;
  if (h['failedRollbackRunId']) run.failedRollbackRunId = h['failedRollbackRunId'];
  const resumedBy = json(personSchema, h['resumedBy']);
  if (resumedBy) run.resumedBy = resumedBy;
  const supersededBy = json(personSchema, h['supersededBy']);
  if (supersededBy) run.supersededBy = supersededBy;
  if (h['rollbackRunId']) run.rollbackRunId = h['rollbackRunId'];
  const rollbackRequestedBy = json(personSchema, h['rollbackRequestedBy']);
  if (rollbackRequestedBy) run.rollbackRequestedBy = rollbackRequestedBy;
  if (h['expiresAtMs']) run.expiresAt = new Date(Number(h['expiresAtMs'])).toISOString();
  const approval = json(decisionSchema, h['approval']);
  if (approval) run.approval = approval;
  const progress = json(progressSchema, h['progress']);
  if (progress) run.progress = progress;
  const result = json(jobResultSchema, h['result']);
  if (result) run.result = result;
  const error = json(runErrorSchema, h['error']);
  if (error) run.error = error;
  if (h['postFailure']) run.postFailure = h['postFailure'];
  if (h['dryRun'] === '1') run.dryRun = true;
  const checklist = json(checklistConfirmationSchema, h['checklist']);
  if (checklist) run.checklist = checklist;
  const cancelRequestedBy = json(personSchema, h['cancelRequestedBy']);
  if (cancelRequestedBy) run.cancelRequestedBy = cancelRequestedBy;
  return run;
}
