import type { JobType } from '../../jobs/job-types.ts';
import { readAgentSeen, type BotServices } from '../bot-services.ts';
import type { AdaptiveCardJson } from '../cards/common/card-kit.ts';
import { certPlanFailedCard } from '../cards/cert/cert-plan-card.ts';
import { certRunCard, currentCertCard } from '../cards/cert/cert-run-card.ts';
import { certStatusFailedCard } from '../cards/cert/cert-status-card.ts';
import { decidedCard, planCard, planFailedCard } from '../cards/mailboxes/plan-cards.ts';
import { runCard } from '../cards/mailboxes/run-cards.ts';
import { statusCard, statusFailedCard } from '../cards/mailboxes/status-card.ts';
import { preflightFailedCard } from '../cards/runbook/preflight-card.ts';
import { setupPlanFailedCard } from '../cards/runbook/setup-plan-card.ts';
import { currentSetupCard, setupRunCard } from '../cards/runbook/setup-run-card.ts';
import { kindOf } from '../runs/run-kinds.ts';
import type { Run } from '../runs/run-model.ts';

/** Which card of its family (bot/cards/<family>/) a run shows for a report. */

/** The run card while the work progresses, or when it failed during the work. */
export function progressCard(run: Run): AdaptiveCardJson {
  switch (kindOf(run).family) {
    case 'runbook':
      return setupRunCard(run);
    case 'cert':
      return certRunCard(run);
    case 'mailboxes':
      return runCard(run);
  }
}

/** The card of a failed first job (a plan, or a check), by the job; other jobs fail on the run card. */
const failedFirstJobCards: Partial<Record<JobType, (run: Run, services: BotServices) => AdaptiveCardJson | Promise<AdaptiveCardJson>>> = {
  plan: planFailedCard,
  status: async (run, services) => statusFailedCard(run, await readAgentSeen(services)),
  'cert-plan': certPlanFailedCard,
  'cert-status': certStatusFailedCard,
  preflight: preflightFailedCard,
  'setup-plan': setupPlanFailedCard,
};

export async function failedCard(services: BotServices, run: Run, jobType: JobType): Promise<AdaptiveCardJson> {
  const card = failedFirstJobCards[jobType];
  return card ? card(run, services) : progressCard(run);
}

/** The card of a run that has ended (or halted), to post again. */
export async function endedCard(services: BotServices, latest: Run): Promise<AdaptiveCardJson> {
  switch (kindOf(latest).family) {
    case 'runbook':
      return currentSetupCard(latest);
    case 'cert':
      return currentCertCard(latest);
    case 'mailboxes':
      return kindOf(latest).immediate
        ? latest.result?.type === 'status'
          ? statusCard(latest, await readAgentSeen(services), latest.result)
          : statusFailedCard(latest, await readAgentSeen(services))
        : latest.state === 'plan-failed'
          ? planFailedCard(latest)
          : latest.state === 'rejected' || latest.state === 'expired'
            ? decidedCard(latest)
            : latest.state === 'succeeded' && !latest.result && latest.plan?.type === 'plan'
              ? planCard(latest, latest.plan)
              : runCard(latest);
  }
}
