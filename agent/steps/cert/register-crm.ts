import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SetupError } from '../../../core/setup-error.ts';
import { thumbprintOfDer } from '../../adapters/graph/key-credentials.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import { runScript } from '../../runtime/cert-requirements.ts';
import { upToDate, would, type CertRef, type CertStep, type CertStepOptions } from './common.ts';

export interface Registered {
  thumbprint: string;
  derBase64: string;
}

/** Get-CrmCertificate S2STokenIssuer; null when none is registered. */
export async function readRegistered(ctx: JobContext, certs: ReadyCerts): Promise<Registered | null> {
  const out = await runScript(ctx, certs, 'Get-S2SCertificate', {});
  if (!out.registered || !out.derBase64) return null;
  return { thumbprint: thumbprintOfDer(out.derBase64), derBase64: out.derBase64 };
}

/** Set-CrmCertificate with the certificate written to a temporary .cer, unless it is registered. */
export async function registerCertificate(ctx: JobContext, certs: ReadyCerts, cert: CertRef): Promise<StepOutcome> {
  const current = await readRegistered(ctx, certs);
  if (current?.thumbprint === cert.thumbprint) return { detail: `${cert.thumbprint} is already registered`, changed: false };
  const dir = await mkdtemp(join(tmpdir(), 'setup-s2s-'));
  try {
    const cerPath = join(dir, `${cert.thumbprint}.cer`);
    await writeFile(cerPath, Buffer.from(cert.derBase64, 'base64'), { mode: 0o600 });
    const out = await runScript(ctx, certs, 'Register-S2SCertificate', { CerPath: cerPath });
    if (out.thumbprint !== cert.thumbprint) throw new SetupError('STEP_FAILED', `CRM registered ${out.thumbprint}, not ${cert.thumbprint}.`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { detail: `registered ${cert.thumbprint}${current ? ` (replacing ${current.thumbprint})` : ''}`, changed: true };
}

/** register-crm: the certificate is CRM's S2S token issuer. */
export function registerStep(o: CertStepOptions): CertStep {
  const { certs } = o;
  return {
    id: 'register-crm',
    async check(env) {
      const { thumbprint } = o.cert();
      const registered = await (o.reads?.registered?.() ?? readRegistered(env.ctx, certs));
      const replacing = registered ? ` (replacing ${registered.thumbprint})` : '';
      if (o.wording === 'rotation') {
        return registered?.thumbprint === thumbprint ? { upToDate: true, detail: 'already registered' } : { upToDate: false, detail: `would register ${thumbprint}${replacing}` };
      }
      if (registered?.thumbprint === thumbprint) return upToDate(`${thumbprint} is registered`);
      return would(`would register ${thumbprint} as the S2S token issuer${replacing}`);
    },
    async apply(env) {
      const out = await registerCertificate(env.ctx, certs, o.cert());
      return { ...out, wrote: out.changed === true };
    },
  };
}
