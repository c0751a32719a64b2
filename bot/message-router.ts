import type { ActivityRequest } from './bot-services.ts';
import { describeError } from './user-facing-error.ts';
import { parseCommand } from './command-parser.ts';
import { errorCard } from './cards/message-cards.ts';
import { handlePlanMailboxesCommand } from './commands/plan-mailboxes-command.ts';
import { handleHelpCommand } from './commands/help-command.ts';
import { handleStatusCommand } from './commands/status-command.ts';
import { handleCertStatusCommand } from './commands/cert-status-command.ts';
import { handleCertRotateCommand } from './commands/cert-rotate-command.ts';
import { handleCertWatchCommand } from './commands/cert-watch-command.ts';

/**
 * Every message goes through one strict parser, then to its command's handler. Unknown input is
 * answered with help; a bad filter with the valid forms.
 */
export async function routeMessage(req: ActivityRequest): Promise<void> {
  const parsed = parseCommand(req.ctx.activity.text);
  if (!parsed.ok) {
    req.log.info({ code: parsed.code }, 'not a valid command');
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
    }
  } catch (error) {
    req.log.error({ err: error }, 'command failed');
    await req.services.poster.replyCard(req.ctx, errorCard('That did not work', describeError(error)));
  }
}
