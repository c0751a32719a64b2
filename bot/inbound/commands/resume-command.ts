import type { ActivityRequest } from '../../bot-services.ts';
import { resumeRun } from '../../runs/run-control.ts';
import { handleRunControl } from './run-control-command.ts';

/** `resume <run>`: continue a halted run from its failed step (who may: checked in resumeRun). */
export async function handleResumeCommand(req: ActivityRequest, runId: string): Promise<void> {
  await handleRunControl(req, 'resume', runId, resumeRun);
}
