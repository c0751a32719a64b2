import type { ActivityRequest } from '../../bot-services.ts';
import { helpCard } from '../../cards/common/help-card.ts';

/** `help`: anyone may ask. No authorization, nothing changes. */
export async function handleHelpCommand(req: ActivityRequest, notice?: string): Promise<void> {
  await req.services.poster.replyCard(req.ctx, helpCard(notice));
}
