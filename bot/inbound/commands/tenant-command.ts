import type { ActivityRequest } from '../../bot-services.ts';
import { startRunbookPlan } from './run-setup-command.ts';

/**
 * `tenant show` (a dry run of the tenant-id step) / `tenant set` (its plan card, then an approver).
 * The tenant ID always comes from Microsoft Graph on the agent, never from what was typed.
 */
export async function handleTenantCommand(req: ActivityRequest, action: 'show' | 'set'): Promise<void> {
  await startRunbookPlan(req, 'tenant', { dryRun: action === 'show' });
}
