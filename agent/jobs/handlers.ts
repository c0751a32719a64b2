import type { JobPayload, JobResult } from '../../jobs/job-types.ts';
import { approveMailboxes } from './mailboxes/approve.ts';
import { planRotation } from './cert/plan.ts';
import { rollbackCertificate } from './cert/rollback.ts';
import { rotateCertificate } from './cert/rotate.ts';
import { certStatus } from './cert/status.ts';
import type { JobContext } from '../runtime/job-context.ts';
import { mailboxStatus } from './mailboxes/status.ts';
import { planMailboxes } from './mailboxes/plan.ts';
import { preflightJob } from './runbook/preflight.ts';
import { planSetup } from './runbook/plan.ts';
import { runSetup } from './runbook/run.ts';
import { testMailboxes } from './mailboxes/test.ts';

/** Runs a verified job payload with the handler for its type. */
export function runJob(payload: JobPayload, ctx: JobContext): Promise<JobResult> {
  switch (payload.type) {
    case 'plan':
      return planMailboxes(payload, ctx);
    case 'status':
      return mailboxStatus(payload, ctx);
    case 'approve':
      return approveMailboxes(payload, ctx);
    case 'test':
      return testMailboxes(payload, ctx);
    case 'cert-status':
      return certStatus(payload, ctx);
    case 'cert-plan':
      return planRotation(payload, ctx);
    case 'cert-rotate':
      return rotateCertificate(payload, ctx);
    case 'cert-rollback':
      return rollbackCertificate(payload, ctx);
    case 'preflight':
      return preflightJob(payload, ctx);
    case 'setup-plan':
      return planSetup(payload, ctx);
    case 'setup-run':
      return runSetup(payload, ctx);
  }
}
