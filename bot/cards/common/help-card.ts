import { certCommandForms, filterForms, runbookCommandForms } from '../../inbound/command-parser.ts';
import { bullets, card, text, title, type AdaptiveCardJson } from './card-kit.ts';

export function helpCard(notice?: string): AdaptiveCardJson {
  const body = [];
  if (notice) body.push(text(notice, { color: 'Warning' }));
  body.push(
    title('@setup: Exchange Online server-side sync for Dynamics 365'),
    text('In a channel, @mention me first; in a personal chat just type the command.', { subtle: true }),
    bullets([
      '`help`: this card',
      '`status`: whether the on-premises agent is reachable, and mailbox counts by approval and Test & Enable result',
      '`approve mailboxes [filter]`: plan, then (after an approver confirms) approve the mailboxes\' email (default filter: `pending`)',
      '`test mailboxes [filter]`: plan, then run Test & Enable on the mailboxes (default filter: `untested`)',
    ]),
    text('Set-up runbook', { weight: 'Bolder' }),
    bullets(runbookCommandForms, 12),
    text('`run setup` needs the requester to confirm the checklist on its plan card and an approver other than the requester; a failed step halts the run with Retry step and Cancel.', { subtle: true }),
    text('Filters', { weight: 'Bolder' }),
    bullets(filterForms),
    text('S2S certificate', { weight: 'Bolder' }),
    bullets(certCommandForms),
    text('A rotation needs an approver other than the person who asked for it. A halted rotation shows Resume and Roll back.', { subtle: true }),
  );
  return card(body);
}
