import type { ActivityRequest } from '../../bot-services.ts';
import { startRunbookPlan } from './run-setup-command.ts';

/** `profile show` (a dry run of the email-profile step) / `profile create` (its plan card, then an approver). */
export async function handleProfileCommand(req: ActivityRequest, action: 'show' | 'create'): Promise<void> {
  await startRunbookPlan(req, 'profile', { dryRun: action === 'show' });
}
