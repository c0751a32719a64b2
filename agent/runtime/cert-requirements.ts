import { SetupError } from '../../core/setup-error.ts';
import { resolveCloudSettings } from '../adapters/graph/cloud-settings.ts';
import type { PowershellOutput, PowershellParams, PowershellScriptName } from '../adapters/powershell/scripts.ts';
import type { CertServices, JobContext } from './job-context.ts';

/** What a certificate job needs configured: the async servers, the PFX folder, Graph. */
export type CertNeed = 'servers' | 'pfx' | 'graph';

export interface ReadyCerts extends CertServices {
  servers: readonly string[];
  serviceAccount: string;
  /** Set when the job needs 'pfx'. */
  certDir: string;
  /** S2SDefaultAuthorizationServerMetadataUrl for the configured CLOUD. */
  metadataUrl: string;
}

/**
 * The certificate services of a job, or CONFIG_MISSING naming every variable still to set. The
 * agent starts without any certificate setting (mailbox-only deployments); only a certificate job
 * needs them.
 */
export function requireCerts(ctx: JobContext, needs: readonly CertNeed[]): ReadyCerts {
  const certs = ctx.certs;
  if (!certs) throw new SetupError('INTERNAL', 'This agent was started without its certificate services.');
  const s = certs.settings;
  const missing: string[] = [];
  if (needs.includes('servers')) {
    if (s.ASYNC_SERVERS.length === 0) missing.push('ASYNC_SERVERS');
    if (!s.ASYNC_SERVICE_ACCOUNT) missing.push('ASYNC_SERVICE_ACCOUNT');
  }
  if (needs.includes('pfx') && !s.CERT_DIR) missing.push('CERT_DIR');
  if (needs.includes('graph')) missing.push(...certs.graphMissing);
  if (missing.length > 0) {
    throw new SetupError('CONFIG_MISSING', `The agent is not set up for certificate jobs: set ${missing.join(', ')} in its configuration.`, {
      hint: "Set these variables on the agent (see .env.example, the agent's certificate section), restart it, then run the command again.",
      details: { missing },
    });
  }
  return {
    ...certs,
    servers: s.ASYNC_SERVERS,
    serviceAccount: s.ASYNC_SERVICE_ACCOUNT ?? '',
    certDir: s.CERT_DIR ?? '',
    metadataUrl: resolveCloudSettings(s.CLOUD).metadataUrl,
  };
}

/** Runs one of the agent's PowerShell scripts with the job's signal (a shutdown or a lost change lock stops it). */
export function runScript<N extends PowershellScriptName>(
  ctx: JobContext,
  certs: ReadyCerts,
  name: N,
  params: PowershellParams<N>,
  options: { pfxPassword?: string } = {},
): Promise<PowershellOutput<N>> {
  return certs.powershell.run(name, params, { signal: ctx.signal, ...options });
}
