import type { MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import { startRunbookPlan } from './run-setup-command.ts';

/** `configure mailboxes [filter]`: the configure-mailboxes step's plan card (profile, delivery methods), then an approver. */
export async function handleConfigureMailboxesCommand(req: ActivityRequest, filter: MailboxFilter): Promise<void> {
  await startRunbookPlan(req, 'configure', { dryRun: false, filter });
}
