import { SetupError } from '../core/setup-error.ts';
import type { JobPayload, JobResult } from '../jobs/job-types.ts';
import { approveMailboxes } from './approve-mailboxes.ts';
import type { JobContext } from './job-context.ts';
import { mailboxStatus } from './mailbox-status.ts';
import { planMailboxes } from './plan-mailboxes.ts';
import { testMailboxes } from './test-mailboxes.ts';

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
    default:
      // Certificate jobs: wired in with the certificate handlers (issue 3).
      throw new SetupError('JOB_INVALID', `This agent cannot run "${payload.type}" jobs yet.`);
  }
}
