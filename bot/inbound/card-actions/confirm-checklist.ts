import { z } from 'zod';
import type { Logger } from '../../../core/logger.ts';
import { checklistItemIdSchema } from '../../../jobs/runbook-types.ts';
import { isSamePerson } from '../authorizer.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import { recordAudit } from '../../audit-trail.ts';
import { personName } from '../../cards/cert/cert-card-parts.ts';
import { checklistInputId } from '../../cards/runbook/setup-plan-card.ts';
import { currentCard, showToAll, type CardActionReply } from '../../runs/run-control.ts';
import type { Run } from '../../runs/run-model.ts';

/** The Confirm checklist click's data: the toggles' values ('true' when on), read for the two questions only. */
const checklistDataSchema = z.object(Object.fromEntries(checklistItemIdSchema.options.map((id) => [checklistInputId(id), z.string().max(10).optional()]))).passthrough();

/**
 * Confirm checklist (`run setup` plan card): only the requester (still an operator or an approver),
 * only while the plan awaits approval,
 * only with both questions switched on. Stored with the run (a compare-and-set on awaiting-approval,
 * refused once the plan has expired) and the card re-rendered for everyone: the toggles become "confirmed by".
 */
export async function confirmChecklist(req: ActivityRequest, run: Run, data: unknown, log: Logger): Promise<CardActionReply> {
  // A requester who is no longer an operator (nor an approver) confirms nothing.
  const member = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!member.allowed) {
    log.info({ reason: member.reason }, 'checklist confirmation refused: may not run commands');
    return member.reason;
  }
  if (!isSamePerson(req.from.aadObjectId, run.requester.aadObjectId)) {
    log.info('checklist confirmation refused: not the requester');
    return `Only ${personName(run.requester) || 'the person who asked for this run'} (who asked for it) can confirm the checklist.`;
  }
  if (run.state !== 'awaiting-approval') return currentCard(run);
  if (run.checklist) return showToAll(req, run.runId);
  const parsed = checklistDataSchema.safeParse(data);
  const values = parsed.success ? (parsed.data as Record<string, unknown>) : {};
  const unconfirmed = checklistItemIdSchema.options.filter((id) => values[checklistInputId(id)] !== 'true');
  if (unconfirmed.length > 0) {
    log.info({ unconfirmed }, 'checklist confirmation refused: not every question is switched on');
    return 'Switch on both checklist questions (they must be true before the set-up can work), then Confirm checklist. Nothing was changed.';
  }
  const confirmedAt = new Date(req.services.now()).toISOString();
  const outcome = await req.services.runs.transition(run.runId, ['awaiting-approval'], 'awaiting-approval', { checklist: { confirmedBy: req.from, confirmedAt } }, { refuseIfExpired: true });
  log.info({ outcome }, outcome.ok ? 'checklist confirmed' : 'checklist not stored: the plan moved on');
  if (outcome.ok) await recordAudit(req, { kind: 'approval', what: 'confirm checklist', runId: run.runId, outcome: 'confirmed' });
  return showToAll(req, run.runId);
}
