import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { parseEnv } from '../../core/parse-env.ts';
import { certFileNameSchema } from '../../jobs/cert-types.ts';
import { deploymentSchema } from '../../jobs/deployment.ts';
import { DEFAULT_EWS_APP_ID } from '../../jobs/ews-access.ts';
import { MIN_SIGNING_KEY_LENGTH } from '../../jobs/envelope-signer.ts';
import { NEVER_PASSED_ENV } from '../adapters/powershell/runner.ts';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const httpsUrl = z
  .string()
  .url()
  .refine((u) => new URL(u).protocol === 'https:', 'must be an https URL')
  .transform((u) => u.replace(/\/+$/, ''));

/** A server name as Windows and PowerShell remoting take it (NetBIOS or DNS name). */
const serverNamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*$/;

/** Comma-separated async-service servers; empty means none configured. */
const serverListSchema = z
  .string()
  .transform((value) => value.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
  .pipe(z.array(z.string().max(253).regex(serverNamePattern, 'each name must be a server name (letters, digits, dashes, dots)')).max(20, 'at most 20 servers'))
  .default('');

const guidPattern = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * The certificate settings (docs/cert-rotation.md, "Agent configuration"). All optional: an agent
 * that only works on mailboxes starts without them, and a certificate job then fails with
 * CONFIG_MISSING naming what to set (see cert-requirements.ts).
 */
const certEnvShape = {
  POWERSHELL: z.string().max(1024).default('powershell.exe'),
  POWERSHELL_TIMEOUT_MS: int(1_000, 3_600_000).default(300_000),
  /** Comma-separated variable names passed to the scripts on top of Windows' own (powershell-runner.ts); never a secret's. */
  POWERSHELL_PASS_ENV: z
    .string()
    .transform((value) => value.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
    .pipe(z.array(
      z.string().max(100).regex(/^[A-Za-z_][A-Za-z0-9_()]*$/, 'each name must be an environment variable name')
        .refine((name) => !(NEVER_PASSED_ENV as readonly string[]).includes(name.toUpperCase()), 'must not name one of the agent\'s secrets'),
    ).max(20, 'at most 20 names'))
    .default(''),
  ASYNC_SERVERS: serverListSchema,
  ASYNC_SERVICE_ACCOUNT: z.string().max(200).regex(/^[^\\\s"'`$;|&<>]+\\[^\\\s"'`$;|&<>]+$/, 'must be DOMAIN\\user').optional(),
  CERT_DIR: z.string().max(1024).refine((p) => isAbsolute(p), 'must be an absolute path').optional(),
  CERT_NEW_PFX: certFileNameSchema.default('s2s-new.pfx'),
  /** Secret: never logged, never in job data, reports or the journal. */
  CERT_PFX_PASSWORD: z.string().max(1024).optional(),
  CERT_MIN_DAYS_LEFT: int(0, 3650).default(30),
  CERT_VERIFY_MAILBOXES: z
    .union([z.literal('all'), z.coerce.number().int().min(1).max(10_000)], { errorMap: () => ({ message: "must be 'all' or a whole number from 1 to 10000" }) })
    .default(10),
  CERT_RETIRE_OLD: z.enum(['remove', 'keep-until-expiry']).default('remove'),
  CLOUD: z.enum(['public', 'usgovhigh']).default('public'),
  GRAPH_TENANT_ID: z.string().regex(guidPattern, 'must be the tenant id (a GUID)').transform((s) => s.toLowerCase()).optional(),
  GRAPH_CLIENT_ID: z.string().regex(guidPattern, 'must be the application (client) id (a GUID)').transform((s) => s.toLowerCase()).optional(),
  /** Secret. */
  GRAPH_CLIENT_SECRET: z.string().max(1024).optional(),
  GRAPH_CLIENT_CERT_FILE: z.string().max(1024).optional(),
  GRAPH_LOGIN_URL: httpsUrl.optional(),
  GRAPH_URL: httpsUrl.optional(),
  TLS_CA_FILE: z.string().max(1024).optional(),
  // ---- EWS access in Exchange Online (docs/ews.md) ----
  /** The app ID Exchange Online must allow for CRM's EWS calls (EwsAllowedAppIDs); confirm it in the tenant's EWS usage report. */
  EWS_APP_ID: z.string().regex(guidPattern, 'must be an application id (a GUID)').transform((s) => s.toLowerCase()).default(DEFAULT_EWS_APP_ID),
  /** Connect-ExchangeOnline -Organization: the tenant's initial domain (absent: read from Graph /organization). */
  EXO_ORGANIZATION: z.string().max(253).regex(/^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$/, 'must be the tenant\'s initial domain (for example contoso.onmicrosoft.com)').transform((s) => s.toLowerCase()).optional(),
  /**
   * Connect-ExchangeOnline -CertificateThumbprint: the app registration's certificate in the store of
   * the agent's account (absent: the certificate of GRAPH_CLIENT_CERT_FILE, which must be in that store too).
   */
  EXO_CERT_THUMBPRINT: z.string().regex(/^[0-9A-Fa-f]{40}$/, 'must be a certificate thumbprint (40 hex digits)').transform((s) => s.toUpperCase()).optional(),
};

const bool = z.enum(['true', 'false']).transform((v) => v === 'true');

/**
 * The runbook settings (docs/runbook.md, "Agent configuration"): the email server profile `run
 * setup` and `profile create` want, and the runbook's options. Defaults follow procedure.md §3.
 */
const runbookEnvShape = {
  /** The organization's unique name for Get-CrmOrganization (absent: the last segment of CRM_URL's path). */
  CRM_ORG_NAME: z.string().regex(/^[A-Za-z0-9_]{1,100}$/, 'must be the organization\'s unique name (letters, digits, underscore)').optional(),
  PROFILE_NAME: z.string().min(1).max(100).refine((v) => !/\p{Cc}/u.test(v), 'must be printable (no control characters)').default('Exchange Online'),
  PROFILE_DESCRIPTION: z.string().max(400).default('Server-side synchronization with Exchange Online, server-to-server authentication (managed by @setup)'),
  /** The profile's owner (a systemuser id); absent: the agent's CRM user. */
  PROFILE_OWNER: z.string().regex(guidPattern, 'must be the owner\'s systemuser id (a GUID)').transform((s) => s.toLowerCase()).optional(),
  /** An explicit Exchange Online tenant id on the profile; absent: the profile uses the default tenant id (recommended, after tenant-id). */
  PROFILE_TENANT_ID: z.string().regex(guidPattern, 'must be a tenant id (a GUID)').transform((s) => s.toLowerCase()).optional(),
  PROFILE_AUTODISCOVER: bool.default('true'),
  PROFILE_INCOMING_URL: httpsUrl.optional(),
  PROFILE_OUTGOING_URL: httpsUrl.optional(),
  /** "Process email from": an ISO date-time; absent: the time the profile is created. */
  PROFILE_PROCESS_EMAIL_FROM: z.string().datetime({ offset: true }).optional(),
  PROFILE_MIN_POLLING_MINUTES: int(0, 1440).default(0),
  PROFILE_MOVE_UNDELIVERABLE: bool.default('false'),
  /** on: `run setup` ends with the AD FS step (the script for the AD FS server and a checklist entry). */
  SETUP_ADFS: z.enum(['on', 'off']).default('off'),
  /** BullMQ lock of a running job: a killed agent's job is picked up again about this long after (stalled-job recovery). */
  AGENT_LOCK_DURATION_MS: int(1_000, 600_000).default(30_000),
  /** The agent-side certificate lock's time to live (runtime/change-lock.ts): how long a crashed agent's lock blocks the next attempt. */
  CERT_LOCK_TTL_MS: int(1_000, 3_600_000).default(120_000),
};

const agentEnvSchema = z
  .object({
    REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
    REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 letters, digits, dots, dashes or underscores').default('setup'),
    DEPLOYMENT: deploymentSchema.default('default'),
    JOB_SIGNING_KEY: z.string().min(MIN_SIGNING_KEY_LENGTH, `must be at least ${MIN_SIGNING_KEY_LENGTH} characters`),
    /** The organization URL (for example https://crm.contoso.local/contoso); the client adds /api/data/v9.0/. */
    CRM_URL: z
      .string()
      .url()
      .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http or https URL')
      .transform((u) => u.replace(/\/+$/, '')),
    CRM_AUTH: z.enum(['ntlm', 'none']),
    CRM_USERNAME: z.string().max(256).optional(),
    CRM_PASSWORD: z.string().max(1024).optional(),
    CRM_DOMAIN: z.string().max(256).optional(),
    CRM_BATCH_SIZE: int(1, 1000).default(100),
    CRM_CONCURRENCY: int(1, 64).default(4),
    CRM_PAGE_SIZE: int(1, 5000).default(1000),
    CRM_TIMEOUT_MS: int(100, 600_000).default(30_000),
    CRM_MAX_RETRIES: int(0, 20).default(4),
    TEST_POLL_INTERVAL_MS: int(10, 3_600_000).default(10_000),
    TEST_TIMEOUT_MS: int(100, 24 * 3_600_000).default(1_800_000),
    PROGRESS_INTERVAL_MS: int(0, 600_000).default(2_000),
    AGENT_CONCURRENCY: int(1, 32).default(2),
    HEARTBEAT_INTERVAL_MS: int(100, 3_600_000).default(15_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ...certEnvShape,
    ...runbookEnvShape,
  })
  .superRefine((env, ctx) => {
    if (env.GRAPH_CLIENT_SECRET && env.GRAPH_CLIENT_CERT_FILE) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['GRAPH_CLIENT_SECRET'], message: 'set either GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERT_FILE, not both' });
    }
    if (!env.PROFILE_AUTODISCOVER) {
      for (const key of ['PROFILE_INCOMING_URL', 'PROFILE_OUTGOING_URL'] as const) {
        if (!env[key]) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'is required when PROFILE_AUTODISCOVER=false' });
      }
    }
    if (env.CRM_AUTH !== 'ntlm') return;
    for (const key of ['CRM_USERNAME', 'CRM_PASSWORD', 'CRM_DOMAIN'] as const) {
      if (!env[key]) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'is required when CRM_AUTH=ntlm' });
    }
  });

export type AgentConfig = Readonly<z.output<typeof agentEnvSchema>>;

/** Parses the agent's environment once, at start, into a frozen object. Nothing else reads process.env. */
export function loadAgentConfig(env: NodeJS.ProcessEnv): AgentConfig {
  return parseEnv(agentEnvSchema, env);
}
