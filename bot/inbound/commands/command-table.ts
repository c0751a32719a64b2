import { describeFilter, type MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import type { ActivityRequest } from '../../bot-services.ts';
import type { Command } from '../command-parser.ts';
import { handleAuditCommand } from './audit-command.ts';
import { handleCancelCommand } from './cancel-command.ts';
import { handleCertRotateCommand } from './cert-rotate-command.ts';
import { handleCertStatusCommand } from './cert-status-command.ts';
import { handleCertWatchCommand } from './cert-watch-command.ts';
import { handleConfigureMailboxesCommand } from './configure-mailboxes-command.ts';
import { handleEwsCommand } from './ews-command.ts';
import { handleHelpCommand } from './help-command.ts';
import { handleJobsCommand } from './jobs-command.ts';
import { handlePlanMailboxesCommand } from './plan-mailboxes-command.ts';
import { handlePreflightCommand } from './preflight-command.ts';
import { handleProfileCommand } from './profile-command.ts';
import { handleResumeCommand } from './resume-command.ts';
import { handleRunSetupCommand, startRunbookPlan } from './run-setup-command.ts';
import { handleStatusCommand } from './status-command.ts';
import { handleTenantCommand } from './tenant-command.ts';

export type CommandOf<K extends Command['kind']> = Extract<Command, { kind: K }>;

export interface CommandRow<K extends Command['kind']> {
  /** The command for the audit log: its words and, for mailbox commands, the filter. */
  describe(command: CommandOf<K>): string;
  /** Its handler (one file each, same shape: parse → authorize → plan/enqueue → acknowledge). */
  handle(req: ActivityRequest, command: CommandOf<K>): Promise<void>;
  /** The run the command names (resume, cancel), for the audit entry's runId. */
  runId?(command: CommandOf<K>): string;
  /** Anyone may use it (help); every other command needs an operator or an approver. */
  open?: boolean;
}

const withFilter = (words: string, filter: MailboxFilter) => `${words} (filter: ${describeFilter(filter)})`;

/** Every parsed command (bot/inbound/command-parser.ts) to its row: a new command is its handler file and one row. */
export const commandTable: { readonly [K in Command['kind']]: CommandRow<K> } = {
  help: { describe: () => 'help', handle: (req) => handleHelpCommand(req), open: true },
  status: { describe: () => 'status', handle: (req) => handleStatusCommand(req) },
  'approve-mailboxes': { describe: (c) => withFilter('approve mailboxes', c.filter), handle: (req, c) => handlePlanMailboxesCommand(req, 'approve', c.filter) },
  'test-mailboxes': { describe: (c) => withFilter('test mailboxes', c.filter), handle: (req, c) => handlePlanMailboxesCommand(req, 'test', c.filter) },
  'cert-status': { describe: () => 'cert status', handle: (req) => handleCertStatusCommand(req) },
  'cert-rotate': { describe: (c) => (c.file ? `cert rotate ${c.file}` : 'cert rotate (the agent\'s CERT_NEW_PFX)'), handle: (req, c) => handleCertRotateCommand(req, c.file) },
  'cert-watch-here': { describe: () => 'cert watch here', handle: (req) => handleCertWatchCommand(req) },
  'run-setup': { describe: (c) => withFilter(c.dryRun ? 'run setup --dry-run' : 'run setup', c.filter), handle: (req, c) => handleRunSetupCommand(req, { dryRun: c.dryRun, filter: c.filter }) },
  preflight: { describe: () => 'preflight', handle: (req) => handlePreflightCommand(req) },
  profile: { describe: (c) => `profile ${c.action}`, handle: (req, c) => handleProfileCommand(req, c.action) },
  tenant: { describe: (c) => `tenant ${c.action}`, handle: (req, c) => handleTenantCommand(req, c.action) },
  ews: { describe: (c) => `ews ${c.action}`, handle: (req, c) => handleEwsCommand(req, c.action) },
  'primary-org': {
    describe: (c) => withFilter('sync this org only', c.filter),
    handle: async (req, c) => {
      await startRunbookPlan(req, 'primary-org', { dryRun: false, filter: c.filter });
    },
  },
  'configure-mailboxes': { describe: (c) => withFilter('configure mailboxes', c.filter), handle: (req, c) => handleConfigureMailboxesCommand(req, c.filter) },
  jobs: { describe: () => 'jobs', handle: (req) => handleJobsCommand(req) },
  resume: { describe: (c) => `resume ${c.runId}`, handle: (req, c) => handleResumeCommand(req, c.runId), runId: (c) => c.runId },
  cancel: { describe: (c) => `cancel ${c.runId}`, handle: (req, c) => handleCancelCommand(req, c.runId), runId: (c) => c.runId },
  audit: { describe: (c) => `audit ${c.count}`, handle: (req, c) => handleAuditCommand(req, c.count) },
};

/** The row of a parsed command. */
export function commandRow<K extends Command['kind']>(command: CommandOf<K>): CommandRow<K> {
  return commandTable[command.kind];
}
