import { loadRun, type ActivityRequest } from '../../bot-services.ts';
import type { CardActionReply } from '../../runs/run-control.ts';
import { card, text } from '../../cards/common/card-kit.ts';
import type { Logger } from '../../../core/logger.ts';
import type { Run } from '../../runs/run-model.ts';
import { replyRefusal } from './refuse.ts';

/** What `resume <run>` and `cancel <run>` say about a run this deployment does not have. */
export function unknownRunText(runId: string): string {
  return `No run ${runId} in this deployment; \`jobs\` lists them.`;
}

export type RunControl = (req: ActivityRequest, run: Run, log: Logger) => Promise<CardActionReply>;

/**
 * `resume <run>` / `cancel <run>`: who may run commands first (a stranger learns nothing about any
 * run, not even whether it exists), then load the run (another deployment's run is unknown), then the
 * same server-side function a card's button calls, which checks who may do it to that run. A text
 * reply is sent as is (on a one-line card); a card is sent with a short line on top saying what was asked.
 */
export async function handleRunControl(req: ActivityRequest, verb: 'resume' | 'cancel', runId: string, control: RunControl): Promise<void> {
  const log = req.log.child({ runId, command: verb });
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) {
    await replyRefusal(req, decision.reason);
    return;
  }
  const run = await loadRun(req.services, runId, log);
  if (!run) {
    log.info('unknown run');
    await req.services.poster.replyCard(req.ctx, card([text(unknownRunText(runId))]));
    return;
  }
  const reply = await control(req, run, log);
  if (typeof reply === 'string') {
    await req.services.poster.replyCard(req.ctx, card([text(reply)]));
    return;
  }
  const heading = verb === 'resume' ? `Run ${runId}: resume asked.` : `Run ${runId}: cancel asked.`;
  await req.services.poster.replyCard(req.ctx, { ...reply, body: [text(heading, { weight: 'Bolder' }), ...reply.body] });
}
