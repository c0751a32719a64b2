import type { ActivityRequest } from '../../bot-services.ts';
import { auditCard } from '../../cards/common/audit-card.ts';
import { cardBytes, MAX_CARD_BYTES } from '../../cards/common/card-kit.ts';
import { replyRefusal } from './refuse.ts';

/** `audit [n]`: operators or approvers; the latest n entries of the deployment's audit log. Changes nothing. */
export async function handleAuditCommand(req: ActivityRequest, count: number): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);
  const { audit, config } = req.services;
  const entries = await audit.latest(config.deployment, count);
  // Long entries could pass Teams' card limit: show fewer rather than fail.
  let shown = entries;
  let reply = auditCard(shown, config.deployment);
  while (shown.length > 1 && cardBytes(reply) > MAX_CARD_BYTES) {
    shown = shown.slice(0, Math.max(1, Math.floor(shown.length * 0.75)));
    reply = auditCard(shown, config.deployment);
  }
  await req.services.poster.replyCard(req.ctx, reply);
}
