import type { ActivityRequest } from '../../bot-services.ts';
import { jobsCard } from '../../cards/common/jobs-card.ts';
import { replyRefusal } from './refuse.ts';

/** How many runs `jobs` shows. */
export const JOBS_SHOWN = 15;

/** `jobs`: operators or approvers; the deployment's latest runs and their states. Changes nothing. */
export async function handleJobsCommand(req: ActivityRequest): Promise<void> {
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) return replyRefusal(req, decision.reason);
  const { runs, config } = req.services;
  // The index is the deployment's own; a record of another deployment (a forged index entry) is left out all the same.
  const list = (await runs.listRuns(config.deployment, JOBS_SHOWN)).filter((run) => run.deployment === config.deployment);
  await req.services.poster.replyCard(req.ctx, jobsCard(list, config.deployment, JOBS_SHOWN));
}
