import type { AuditLog } from '../../core/audit-log.ts';
import type { Logger } from '../../core/logger.ts';
import type { CertSummary } from '../../jobs/cert-types.ts';
import type { Progress } from '../../jobs/job-types.ts';
import type { AgentConfig } from './config.ts';
import type { ChangeLock } from './change-lock.ts';
import type { StepJournal } from '../steps/journal.ts';
import type { CrmApi } from '../adapters/crm/client.ts';
import type { GraphApi } from '../adapters/graph/api.ts';
import type { PowershellOutput, PowershellParams, PowershellScriptName } from '../adapters/powershell/scripts.ts';

/** The settings the job handlers read. */
export type HandlerSettings = Pick<
  AgentConfig,
  'CRM_BATCH_SIZE' | 'CRM_CONCURRENCY' | 'TEST_POLL_INTERVAL_MS' | 'TEST_TIMEOUT_MS' | 'PROGRESS_INTERVAL_MS'
>;

/**
 * The runbook settings the setup handlers read (issue 4): the organization, the email server
 * profile the runbook wants, the AD FS step.
 */
export type RunbookSettings = Pick<
  AgentConfig,
  | 'CRM_URL'
  | 'CRM_ORG_NAME'
  | 'PROFILE_NAME'
  | 'PROFILE_DESCRIPTION'
  | 'PROFILE_OWNER'
  | 'PROFILE_TENANT_ID'
  | 'PROFILE_AUTODISCOVER'
  | 'PROFILE_INCOMING_URL'
  | 'PROFILE_OUTGOING_URL'
  | 'PROFILE_PROCESS_EMAIL_FROM'
  | 'PROFILE_MIN_POLLING_MINUTES'
  | 'PROFILE_MOVE_UNDELIVERABLE'
  | 'SETUP_ADFS'
>;

/** One audit entry as the agent appends it (core/audit-log.ts). */
export type AuditAppend = Parameters<AuditLog['append']>[0];

/** The certificate settings the certificate handlers read (the PFX password among them: never log this object). */
export type CertSettings = Pick<
  AgentConfig,
  | 'ASYNC_SERVERS'
  | 'ASYNC_SERVICE_ACCOUNT'
  | 'CERT_DIR'
  | 'CERT_NEW_PFX'
  | 'CERT_PFX_PASSWORD'
  | 'CERT_MIN_DAYS_LEFT'
  | 'CERT_VERIFY_MAILBOXES'
  | 'CERT_RETIRE_OLD'
  | 'CLOUD'
>;

export interface PowershellRunOptions {
  /** Put in the child's environment (SETUP_PFX_PASSWORD) for the scripts that need it; never on the command line. */
  pfxPassword?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What the certificate steps need from the PowerShell runner (powershell-runner.ts). */
export interface PowershellApi {
  run<N extends PowershellScriptName>(name: N, params: PowershellParams<N>, options?: PowershellRunOptions): Promise<PowershellOutput<N>>;
}

/** What the certificate steps need from the certificate kit (cert-kit.ts). */
export interface CertKit {
  /** Reads a PFX: its public facts with every problem found, the public certificate as base64 DER and PEM. */
  readCertificateFile(
    bytes: Buffer,
    options: { fileName: string; password?: string; now: number; minDaysLeft: number; requirePrivateKey?: boolean },
  ): { summary: CertSummary; derBase64: string; certPem: string };
  /** The public facts of a certificate CRM or Entra has (no private key, so no KeySpec). */
  summarizeDer(derBase64: string, options: { now: number; minDaysLeft: number }): CertSummary;
}

/**
 * How the agent signs in to Exchange Online PowerShell, app-only (exchange-online.ts): the Graph
 * app registration and its certificate. Null fields are not configured (the EWS checks then say
 * what to set).
 */
export interface ExchangeSettings {
  /** EWS_APP_ID: the app Exchange Online must allow for CRM. */
  ewsAppId: string;
  /** GRAPH_CLIENT_ID. */
  clientId: string | null;
  /** EXO_CERT_THUMBPRINT, else the SHA-1 thumbprint of GRAPH_CLIENT_CERT_FILE's certificate. */
  certificateThumbprint: string | null;
  /** EXO_ORGANIZATION (null: read from Graph /organization). */
  organization: string | null;
  environment: 'O365Default' | 'O365USGovGCCHigh';
}

/** Everything the certificate jobs use, built once by the agent runtime. */
export interface CertServices {
  settings: CertSettings;
  exchange: ExchangeSettings;
  powershell: PowershellApi;
  kit: CertKit;
  /** The Graph client, built on first use (throws CONFIG_MISSING when the GRAPH_* settings are missing). */
  graph(): GraphApi;
  /** The variables still to set before Graph can be used (empty when it is configured). */
  graphMissing: readonly string[];
  journal: StepJournal;
  /** One certificate change (rotation, rollback) at a time per deployment. */
  lock: ChangeLock;
}

/** Everything a job handler gets: injected, so tests can drive a handler without Redis or BullMQ. */
export interface JobContext {
  /** A per-job scope of the CRM client (its requestCount is this job's). */
  crm: CrmApi;
  settings: HandlerSettings;
  logger: Logger;
  /** Progress sink; the caller throttles it (see progress-throttle.ts). */
  report: (progress: Progress) => void;
  now: () => number;
  /** Waits, or rejects when `signal` aborts (the agent is closing). */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
  /** The certificate side (issue 3); absent in contexts built only for the mailbox jobs. */
  certs?: CertServices;
  /** The runbook settings (issue 4); absent in contexts built only for the other jobs. */
  runbook?: RunbookSettings;
  /** The deployment this agent serves (the audit entries name it). */
  deployment?: string;
  /** Appends to the deployment's audit log (core/audit-log.ts); the step runner writes one entry per step. */
  audit?: (entry: AuditAppend) => Promise<void>;
  /** Whether someone asked to cancel this run (`<REDIS_PREFIX>:cancel:<runId>`, the bot's RunStore.cancelKey); read before every step. */
  isCancelled?: () => Promise<boolean>;
}
