import type { ActivityRequest } from '../../bot-services.ts';
import { refusalCard } from '../../cards/common/message-cards.ts';

/** Says who may do it; changes nothing. */
export async function replyRefusal(req: ActivityRequest, reason: string): Promise<void> {
  req.log.info({ reason }, 'refused');
  await req.services.poster.replyCard(req.ctx, refusalCard(reason));
}
