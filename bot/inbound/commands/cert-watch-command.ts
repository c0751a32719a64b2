import { TurnContext } from 'botbuilder';
import type { ActivityRequest } from '../../bot-services.ts';
import { certWatchSetCard } from '../../cards/cert/cert-watch-card.ts';
import { errorCard } from '../../cards/common/message-cards.ts';
import { runCertWatch, storeCertWatchConversation } from '../../cert-watch/cert-watch.ts';
import type { ConversationRef } from '../../runs/run-model.ts';
import { describeError } from '../../user-facing-error.ts';
import { replyRefusal } from './refuse.ts';

/**
 * `cert watch here` (operators, approvers): this conversation gets the certificate's rotation-due
 * cards from now on (the last conversation to ask wins). Confirms with the thresholds and the
 * schedule, then runs a check at once.
 */
export async function handleCertWatchCommand(req: ActivityRequest): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);

  const { config, poster } = req.services;
  const reference = JSON.parse(JSON.stringify(TurnContext.getConversationReference(req.ctx.activity))) as ConversationRef;
  await storeCertWatchConversation(req.services, reference);
  req.log.info({ conversationId: reference.conversation.id }, 'certificate watch conversation set');
  await poster.replyCard(req.ctx, certWatchSetCard({ deployment: config.deployment, thresholds: config.certWatchThresholds, cron: config.certWatchCron }));

  try {
    await runCertWatch(req.services, req.log);
  } catch (error) {
    // The watch is set; only this first check did not start (the schedule runs the next one).
    await poster.replyCard(req.ctx, errorCard('The first check did not start', `${describeError(error)} The watch is set: the next scheduled check runs as usual.`));
  }
}
