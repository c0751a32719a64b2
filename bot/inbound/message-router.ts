import type { ActivityRequest } from '../bot-services.ts';
import { describeError } from '../user-facing-error.ts';
import { parseCommand, type Command } from './command-parser.ts';
import { describeUnparsed, recordAudit } from '../audit-trail.ts';
import { errorCard } from '../cards/common/message-cards.ts';
import { handleHelpCommand } from './commands/help-command.ts';
import { commandRow } from './commands/command-table.ts';

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
    await commandRow(command).handle(req, command);
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
  const row = commandRow(command);
  const runId = row.runId?.(command);
  const allowed = row.open === true || req.services.authorizer.canRunCommands(req.from.aadObjectId).allowed;
  await recordAudit(req, {
    kind: allowed ? 'command' : 'refusal',
    what: row.describe(command),
    ...(runId ? { runId } : {}),
    outcome: allowed ? 'accepted' : 'NOT_AUTHORIZED',
  });
}
