import { SetupError } from '../../../core/setup-error.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import { listServers, upToDate, would, type CertStep, type CertStepOptions } from './common.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { onServer } from './on-server.ts';

/** Restarts the async services on every server and checks that they run. */
export async function restartServices(ctx: JobContext, certs: ReadyCerts): Promise<StepOutcome> {
  for (const server of certs.servers) {
    await onServer(server, async () => {
      const out = await runScript(ctx, certs, 'Restart-CrmAsyncServices', { ComputerName: server });
      const notRunning = out.services.filter((s) => s.status !== 'Running');
      if (notRunning.length > 0 || out.services.length === 0) {
        throw new SetupError('STEP_FAILED', `after the restart ${notRunning.map((s) => `${s.name} is ${s.status}`).join(', ') || 'no async service was found'}.`, {
          hint: "Read the server's Application event log for why the service stopped, start it, then Resume.",
        });
      }
    });
  }
  return { detail: `restarted on ${listServers(certs.servers)}`, changed: false };
}

/**
 * restart-services: the async services pick up what the steps before changed. The rotation and the
 * rollback always restart; the runbook (`restartOwed`) only when a step changed something they read.
 */
export function restartStep(o: Pick<CertStepOptions, 'certs' | 'wording'> & { restartOwed?: () => boolean }): CertStep {
  const { certs } = o;
  const owed = () => o.restartOwed?.() ?? true;
  return {
    id: 'restart-services',
    check() {
      if (o.wording === 'rotation') return Promise.resolve({ upToDate: false, detail: `would restart on ${listServers(certs.servers)}` });
      return Promise.resolve(owed() ? would(`would restart MSCRMAsyncService and MSCRMAsyncService$maintenance on ${listServers(certs.servers)}`) : upToDate('nothing the async services read would change'));
    },
    async apply(env) {
      if (!owed()) return { detail: 'not needed: nothing the async services read changed', changed: false, wrote: false };
      const out = await restartServices(env.ctx, certs);
      return { ...out, wrote: true };
    },
  };
}
