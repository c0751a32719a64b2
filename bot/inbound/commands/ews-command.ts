import type { ActivityRequest } from '../../bot-services.ts';
import { startRunbookPlan } from './run-setup-command.ts';

/**
 * `ews show` (a dry run of the ews-access step: what Exchange Online allows, the mailboxes with EWS
 * disabled, the days left until 1 April 2027) / `ews allow` (its plan card, then an approver). The
 * app ID to allow is the agent's EWS_APP_ID, never what was typed.
 */
export async function handleEwsCommand(req: ActivityRequest, action: 'show' | 'allow'): Promise<void> {
  await startRunbookPlan(req, 'ews', { dryRun: action === 'show' });
}
