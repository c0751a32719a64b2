import type { ActivityRequest } from '../bot-services.ts';
import { describeError } from '../user-facing-error.ts';
import { parseCommand, type Command } from './command-parser.ts';
import { describeCommand, describeUnparsed, recordAudit, runIdOfCommand } from '../audit-trail.ts';
import { errorCard } from '../cards/common/message-cards.ts';
import { handlePlanMailboxesCommand } from './commands/plan-mailboxes-command.ts';
import { handleHelpCommand } from './commands/help-command.ts';
import { handleStatusCommand } from './commands/status-command.ts';
import { handleCertStatusCommand } from './commands/cert-status-command.ts';
import { handleCertRotateCommand } from './commands/cert-rotate-command.ts';
import { handleCertWatchCommand } from './commands/cert-watch-command.ts';
import { handleRunSetupCommand } from './commands/run-setup-command.ts';
import { handlePreflightCommand } from './commands/preflight-command.ts';
import { handleProfileCommand } from './commands/profile-command.ts';
import { handleEwsCommand } from './commands/ews-command.ts';
import { startRunbookPlan } from './commands/run-setup-command.ts';
import { handleTenantCommand } from './commands/tenant-command.ts';
import { handleConfigureMailboxesCommand } from './commands/configure-mailboxes-command.ts';
import { handleJobsCommand } from './commands/jobs-command.ts';
import { handleResumeCommand } from './commands/resume-command.ts';
import { handleCancelCommand } from './commands/cancel-command.ts';
import { handleAuditCommand } from './commands/audit-command.ts';

/**
 * Every message goes through one strict parser, then to its command's handler. Unknown input is
 * answered with help; a bad filter with the valid forms. Every message is audited first: a parsed
 * command as `command` / accepted, a message that did not parse or a person without the right to
 * run commands as `refusal` with the reason code (the handlers say why to the person).
 */
export async function routeMessage(req: ActivityRequest): Promise<void> {
  const parsed = parseCommand(req.ctx.activity.text);
  if (!parsed.ok) {
    req.log.info({ code: parsed.code }, 'not a valid command');
    await recordAudit(req, { kind: 'refusal', what: describeUnparsed(req.ctx.activity.text), outcome: parsed.code });
    if (parsed.code === 'FILTER_INVALID') {
      await req.services.poster.replyCard(req.ctx, errorCard('That filter is not valid', parsed.message));
      return;
    }
    if (parsed.code === 'CERT_FILE_INVALID') {
      await req.services.poster.replyCard(req.ctx, errorCard('That file name is not valid', `${parsed.message} Nothing was changed.`));
      return;
    }
    await handleHelpCommand(req, parsed.message);
    return;
  }
  const command = parsed.command;
  req.log.info({ command: command.kind }, 'command');
  await auditCommand(req, command);
  try {
    switch (command.kind) {
      case 'help':
        return await handleHelpCommand(req);
      case 'status':
        return await handleStatusCommand(req);
      case 'approve-mailboxes':
        return await handlePlanMailboxesCommand(req, 'approve', command.filter);
      case 'test-mailboxes':
        return await handlePlanMailboxesCommand(req, 'test', command.filter);
      case 'cert-status':
        return await handleCertStatusCommand(req);
      case 'cert-rotate':
        return await handleCertRotateCommand(req, command.file);
      case 'cert-watch-here':
        return await handleCertWatchCommand(req);
      case 'run-setup':
        return await handleRunSetupCommand(req, { dryRun: command.dryRun, filter: command.filter });
      case 'preflight':
        return await handlePreflightCommand(req);
      case 'profile':
        return await handleProfileCommand(req, command.action);
      case 'tenant':
        return await handleTenantCommand(req, command.action);
      case 'ews':
        return await handleEwsCommand(req, command.action);
      case 'primary-org':
        await startRunbookPlan(req, 'primary-org', { dryRun: false, filter: command.filter });
        return;
      case 'configure-mailboxes':
        return await handleConfigureMailboxesCommand(req, command.filter);
      case 'jobs':
        return await handleJobsCommand(req);
      case 'resume':
        return await handleResumeCommand(req, command.runId);
      case 'cancel':
        return await handleCancelCommand(req, command.runId);
      case 'audit':
        return await handleAuditCommand(req, command.count);
    }
  } catch (error) {
    req.log.error({ err: error }, 'command failed');
    await req.services.poster.replyCard(req.ctx, errorCard('That did not work', describeError(error)));
  }
}

/**
 * `command` / accepted, or `refusal` / NOT_AUTHORIZED for a person who may not run commands (every
 * command but `help` needs an operator or an approver; the handler refuses it and says who may).
 */
async function auditCommand(req: ActivityRequest, command: Command): Promise<void> {
  const runId = runIdOfCommand(command);
  const allowed = command.kind === 'help' || req.services.authorizer.canRunCommands(req.from.aadObjectId).allowed;
  await recordAudit(req, {
    kind: allowed ? 'command' : 'refusal',
    what: describeCommand(command),
    ...(runId ? { runId } : {}),
    outcome: allowed ? 'accepted' : 'NOT_AUTHORIZED',
  });
}
