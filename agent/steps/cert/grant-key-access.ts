import { SetupError } from '../../../core/setup-error.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import { joinDetail, listServers, upToDate, would, type CertRef, type CertStep, type CertStepOptions } from './common.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { machineCert, storesOf } from './import.ts';
import { onServer } from './on-server.ts';

/** Per server, grant Read on the private key unless the service account has it. */
export async function grantKeyAccess(ctx: JobContext, certs: ReadyCerts, next: CertRef): Promise<StepOutcome> {
  const granted: string[] = [];
  const already: string[] = [];
  for (const server of certs.servers) {
    await onServer(server, async () => {
      const m = await machineCert(ctx, certs, server, next);
      if (!m.found || !m.hasPrivateKey) throw new SetupError('STEP_FAILED', `the certificate ${next.thumbprint} is not in LocalMachine\\My with its private key.`, { hint: 'Resume the rotation: the import step runs again where it is missing.' });
      if (m.serviceAccountCanRead) {
        already.push(server);
        return;
      }
      const out = await runScript(ctx, certs, 'Grant-CertificateKeyAccess', { ComputerName: server, Thumbprint: next.thumbprint, ServiceAccount: certs.serviceAccount });
      if (!out.granted && !out.alreadyHad) throw new SetupError('STEP_FAILED', `Read on the private key could not be granted to ${certs.serviceAccount}.`, { hint: 'Grant it by hand (Manage Private Keys in certlm.msc), then Resume.' });
      if (out.alreadyHad) already.push(server);
      else granted.push(server);
    });
  }
  return {
    detail: joinDetail([granted.length > 0 && `granted ${certs.serviceAccount} Read on ${listServers(granted)}`, already.length > 0 && `already readable on ${listServers(already)}`]),
    changed: granted.length > 0,
  };
}

/** grant-key-access: the async service account can read the private key on every server. */
export function grantKeyAccessStep(o: CertStepOptions): CertStep {
  const { certs } = o;
  return {
    id: 'grant-key-access',
    async check(env) {
      const readable: string[] = [];
      const lacking: string[] = [];
      let unreadable = 0;
      for (const [server, m] of await storesOf(o, env)) {
        if (m instanceof Error) unreadable++;
        else if (m.found && m.serviceAccountCanRead) readable.push(server);
        else lacking.push(server);
      }
      if (o.wording === 'rotation') {
        if (lacking.length === 0 && unreadable === 0) return { upToDate: true, detail: `${certs.serviceAccount} can already read the key on ${listServers(readable)}` };
        return { upToDate: false, detail: joinDetail([lacking.length > 0 && `would grant ${certs.serviceAccount} Read on ${listServers(lacking)}`, readable.length > 0 && `already readable on ${listServers(readable)}`]) };
      }
      if (lacking.length === 0) return upToDate(`${certs.serviceAccount} can read the key on ${listServers(certs.servers)}`);
      return would(`would grant ${certs.serviceAccount} Read on the private key on ${listServers(lacking)}`);
    },
    async apply(env) {
      const out = await grantKeyAccess(env.ctx, certs, o.cert());
      return { ...out, wrote: out.changed === true };
    },
  };
}
