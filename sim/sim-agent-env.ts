import { fileURLToPath } from 'node:url';
import { SIM_EXO_CERT_THUMBPRINT } from './exchange-online.ts';
import { DEFAULT_ASYNC_SERVERS, DEFAULT_GRAPH_CLIENT_SECRET, DEFAULT_SERVICE_ACCOUNT, SIM_GRAPH_CLIENT_ID, SIM_TENANT_ID } from './s2s-seed.ts';

/** The PowerShell stand-in executable, invoked by the agent exactly like powershell.exe. */
export const PWSH_SIM_PATH = fileURLToPath(new URL('./bin/pwsh-sim.mjs', import.meta.url));

export interface SimAgentEnvOptions {
  /** The CRM simulator's origin (CrmSimulator.baseUrl): the stand-in posts its scripts there. */
  crmBaseUrl: string;
  graph: { loginUrl: string; graphUrl: string; caFile: string };
  /** Where the demo or the test put the PFX files the agent may read. */
  certDir: string;
  pfxPassword: string;
  asyncServers?: readonly string[];
  serviceAccount?: string;
  graphClientSecret?: string;
}

/**
 * The agent's certificate settings that point it at the simulators: the same variables an
 * administrator sets on a CRM server (POWERSHELL, ASYNC_SERVERS, CERT_*, GRAPH_*, TLS_CA_FILE), with
 * the stand-in as the PowerShell executable and the Graph simulator as login and Graph host.
 * PWSH_SIM_URL is read by the stand-in, not by the agent: POWERSHELL_PASS_ENV names it so the agent
 * passes it to its child processes (the agent gives them only Windows' own variables otherwise); the
 * demo's agent process inherits it, an in-process agent gets it in `powershellEnv`.
 */
export function simAgentEnvironment(options: SimAgentEnvOptions): Record<string, string> {
  return {
    POWERSHELL: PWSH_SIM_PATH,
    PWSH_SIM_URL: options.crmBaseUrl,
    POWERSHELL_PASS_ENV: 'PWSH_SIM_URL',
    ASYNC_SERVERS: (options.asyncServers ?? DEFAULT_ASYNC_SERVERS).join(','),
    ASYNC_SERVICE_ACCOUNT: options.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT,
    CERT_DIR: options.certDir,
    CERT_PFX_PASSWORD: options.pfxPassword,
    GRAPH_TENANT_ID: SIM_TENANT_ID,
    GRAPH_CLIENT_ID: SIM_GRAPH_CLIENT_ID,
    GRAPH_CLIENT_SECRET: options.graphClientSecret ?? DEFAULT_GRAPH_CLIENT_SECRET,
    GRAPH_LOGIN_URL: options.graph.loginUrl,
    GRAPH_URL: options.graph.graphUrl,
    TLS_CA_FILE: options.graph.caFile,
    // Exchange Online PowerShell signs in with the app's certificate (the tenant's initial domain comes from Graph).
    EXO_CERT_THUMBPRINT: SIM_EXO_CERT_THUMBPRINT,
  };
}
