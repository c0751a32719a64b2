import type { ActivityRequest } from '../../bot-services.ts';
import { cancelRun } from '../../runs/run-control.ts';
import { handleRunControl } from './run-control-command.ts';

/** `cancel <run>`: stop a run cleanly (who may: checked in cancelRun). */
export async function handleCancelCommand(req: ActivityRequest, runId: string): Promise<void> {
  await handleRunControl(req, 'cancel', runId, cancelRun);
}
