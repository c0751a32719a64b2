import { S2S_AUTHORITY_PRINCIPAL_ID } from '../../adapters/graph/api.ts';
import type { PowershellOutput } from '../../adapters/powershell/scripts.ts';
import type { ReadyCerts } from '../../runtime/cert-requirements.ts';
import type { JobContext } from '../../runtime/job-context.ts';
import type { StepOutcome } from '../runner.ts';
import { reason, upToDate, would, type CertStep, type CertStepOptions } from './common.ts';
import { runScript } from '../../runtime/cert-requirements.ts';

export async function checkSettings(ctx: JobContext, certs: ReadyCerts): Promise<{ current: PowershellOutput<'Get-S2SServerSettings'>; ok: boolean }> {
  const current = await runScript(ctx, certs, 'Get-S2SServerSettings', {});
  return { current, ok: current.principalId === S2S_AUTHORITY_PRINCIPAL_ID && current.metadataUrl === certs.metadataUrl };
}

/** The authority principal and the metadata URL, set where they differ. */
export async function applySettings(ctx: JobContext, certs: ReadyCerts): Promise<StepOutcome> {
  const { ok } = await checkSettings(ctx, certs);
  if (ok) return { detail: 'already set', changed: false };
  await runScript(ctx, certs, 'Set-S2SServerSettings', { PrincipalId: S2S_AUTHORITY_PRINCIPAL_ID, MetadataUrl: certs.metadataUrl });
  return { detail: `set the authority principal and ${certs.metadataUrl}`, changed: true };
}

/** s2s-settings: CRM's S2S server settings name the authority principal and the cloud's metadata URL. */
export function settingsStep(o: CertStepOptions): CertStep {
  const { certs } = o;
  const change = `would set the authority principal and ${certs.metadataUrl}`;
  return {
    id: 's2s-settings',
    async check(env) {
      if (o.wording === 'runbook') {
        const { ok } = await checkSettings(env.ctx, certs);
        return ok ? upToDate('the S2S server settings are set') : would(change);
      }
      try {
        const { ok } = await checkSettings(env.ctx, certs);
        return ok ? { upToDate: true, detail: 'already set' } : { upToDate: false, detail: change };
      } catch (error) {
        return { upToDate: false, state: 'failed', detail: `cannot be read: ${reason(error)}` };
      }
    },
    async apply(env) {
      const out = await applySettings(env.ctx, certs);
      return { ...out, wrote: out.changed === true };
    },
  };
}
