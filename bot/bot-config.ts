import { z } from 'zod';
import { parseEnv, parseIdList } from '../core/parse-env.ts';
import { SetupError } from '../core/setup-error.ts';
import { deploymentSchema } from '../jobs/deployment.ts';
import { MIN_SIGNING_KEY_LENGTH } from '../jobs/envelope-signer.ts';

/**
 * The bot's configuration: parsed once, at start, from the environment. Nothing else in bot/
 * reads process.env.
 */
const idList = z
  .string()
  .optional()
  .transform((v) => parseIdList(v))
  .pipe(z.array(z.string().regex(/^[0-9a-f-]{8,64}$/, 'must be a comma-separated list of Entra object IDs (GUIDs)')));

/**
 * A cron pattern as BullMQ's job scheduler takes it: 5 fields (minute hour day month weekday), or
 * 6 with seconds first. Each field: `*`, `?`, numbers, ranges, steps and lists in the field's range,
 * month and weekday names, and the L / W / # forms of day and weekday.
 */
const cronSchema = z
  .string()
  .max(120)
  .refine(isCronPattern, 'must be a cron pattern of 5 fields (minute hour day month weekday) with values in range, for example 0 7 * * * (every day at 07:00 UTC)');

const cronRanges: readonly (readonly [number, number])[] = [[0, 59], [0, 59], [0, 23], [1, 31], [1, 12], [0, 7]];

export function isCronPattern(value: string): boolean {
  const fields = value.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return false;
  const ranges = fields.length === 6 ? cronRanges : cronRanges.slice(1);
  return fields.every((field, i) => {
    const [min, max] = ranges[i] ?? [0, 0];
    return field.split(',').every((item) => cronItemOk(item, min, max));
  });
}

function cronItemOk(item: string, min: number, max: number): boolean {
  if (/^(\?|L|\d{1,2}[LW]|LW|[0-7]#[1-5]|[0-7]L)$/.test(item)) return max === 31 || max === 7;
  if (/^[A-Za-z]{3}(-[A-Za-z]{3})?$/.test(item)) return max === 12 || max === 7;
  const m = /^(\*|(\d{1,2})(?:-(\d{1,2}))?)(?:\/(\d{1,2}))?$/.exec(item);
  if (!m) return false;
  const inRange = (v: string | undefined): boolean => v === undefined || (Number(v) >= min && Number(v) <= max);
  if (m[4] !== undefined && Number(m[4]) < 1) return false;
  if (m[2] !== undefined && m[3] !== undefined && Number(m[3]) < Number(m[2])) return false;
  return inRange(m[2]) && inRange(m[3]);
}

/** Comma-separated days before expiry: positive integers, de-duplicated, sorted descending (30,14,7,1). */
const thresholdsSchema = z
  .string()
  .regex(/^\s*\d{1,4}\s*(,\s*\d{1,4}\s*)*$/, 'must be a comma-separated list of whole numbers of days, for example 30,14,7,1')
  .transform((v) => [...new Set(v.split(',').map((s) => Number(s.trim())))].sort((a, b) => b - a))
  .pipe(z.array(z.number().int().min(1, 'every threshold must be at least 1 day').max(3650, 'a threshold must be at most 3650 days')).min(1).max(20, 'at most 20 thresholds'));

/** The Bot Framework app types botbuilder knows (ConfigurationServiceClientCredentialFactory). */
export const appTypes = ['MultiTenant', 'SingleTenant', 'UserAssignedMSI'] as const;
export type AppType = (typeof appTypes)[number];

const botEnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3978),
  /** The address to listen on; default 127.0.0.1 while authentication is off, 0.0.0.0 with it. */
  HOST: z.string().trim().min(1).max(255).regex(/^[A-Za-z0-9.:_-]+$/, 'must be an IP address or a host name (for example 127.0.0.1 or 0.0.0.0)').optional(),
  MicrosoftAppId: z.string().optional(),
  MicrosoftAppPassword: z.string().optional(),
  /** botbuilder compares the type case-insensitively (its own spelling is UserAssignedMsi); kept in one spelling here. */
  MicrosoftAppType: z
    .string()
    .transform((v) => appTypes.find((t) => t.toLowerCase() === v.toLowerCase()) ?? v)
    .pipe(z.enum(appTypes, { errorMap: () => ({ message: `must be ${appTypes.join(', ')} (new Azure Bot registrations are SingleTenant or UserAssignedMSI)` }) }))
    .optional(),
  /** Goes into the login URL (https://login.microsoftonline.com/<tenant>): a GUID or a domain name, nothing else. */
  MicrosoftAppTenantId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/, 'must be the directory (tenant) id, a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47').optional(),
  NODE_ENV: z.string().default('development'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 letters, digits, dots, dashes or underscores').default('setup'),
  DEPLOYMENT: deploymentSchema.default('default'),
  JOB_SIGNING_KEY: z
    .string({ required_error: 'is required (the HMAC key shared with the agent)' })
    .min(MIN_SIGNING_KEY_LENGTH, `must be at least ${MIN_SIGNING_KEY_LENGTH} characters`),
  SETUP_OPERATORS: idList,
  SETUP_APPROVERS: idList,
  APPROVAL_TTL_MINUTES: z.coerce.number().int().positive().max(7 * 24 * 60).default(60),
  CARD_UPDATE_INTERVAL_MS: z.coerce.number().int().nonnegative().max(60_000).default(2000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** When the certificate expiry watch runs (cron, UTC): a BullMQ job scheduler on the timer queue. */
  CERT_WATCH_CRON: cronSchema.default('0 7 * * *'),
  /** Days before expiry at which a rotation-due card is posted (once each). */
  CERT_WATCH_THRESHOLDS: thresholdsSchema.default('30,14,7,1'),
});

export interface BotConfig {
  port: number;
  /**
   * Where the HTTP server listens. Without authentication anyone who reaches the port can post
   * activities as any user, so the default then is 127.0.0.1 (local use: Agents Playground, tests);
   * with authentication it is 0.0.0.0. HOST overrides both.
   */
  host: string;
  /** Whether HOST was set (rather than the default). */
  hostExplicit: boolean;
  /** The four standard Bot Framework variables, passed as they are to ConfigurationBotFrameworkAuthentication. */
  auth: {
    MicrosoftAppId?: string;
    MicrosoftAppPassword?: string;
    MicrosoftAppType?: AppType;
    MicrosoftAppTenantId?: string;
  };
  /** The bot's app id ('' when authentication is off). */
  appId: string;
  production: boolean;
  redisUrl: string;
  redisPrefix: string;
  deployment: string;
  signingKey: string;
  operators: readonly string[];
  approvers: readonly string[];
  approvalTtlMinutes: number;
  cardUpdateIntervalMs: number;
  logLevel: string;
  /** Cron pattern (UTC) of the certificate expiry watch. */
  certWatchCron: string;
  /** Days before expiry that get a rotation-due card: positive, de-duplicated, sorted descending. */
  certWatchThresholds: readonly number[];
}

export function loadBotConfig(env: NodeJS.ProcessEnv): Readonly<BotConfig> {
  const e = parseEnv(botEnvSchema, env);
  const auth: BotConfig['auth'] = {};
  if (e.MicrosoftAppId) auth.MicrosoftAppId = e.MicrosoftAppId;
  if (e.MicrosoftAppPassword) auth.MicrosoftAppPassword = e.MicrosoftAppPassword;
  if (e.MicrosoftAppType) auth.MicrosoftAppType = e.MicrosoftAppType;
  if (e.MicrosoftAppTenantId) auth.MicrosoftAppTenantId = e.MicrosoftAppTenantId;
  // What botbuilder would otherwise reject with a bare AssertionError when the adapter is built
  // (ConfigurationServiceClientCredentialFactory), in any environment.
  const problems: string[] = [];
  if (e.MicrosoftAppType === 'SingleTenant') {
    if (!e.MicrosoftAppTenantId) problems.push('MicrosoftAppTenantId: is required when MicrosoftAppType is SingleTenant (the directory (tenant) id of the bot\'s app registration)');
    if (!e.MicrosoftAppId) problems.push('MicrosoftAppId: is required when MicrosoftAppType is SingleTenant (the app registration\'s application (client) id)');
    else if (!e.MicrosoftAppPassword) problems.push('MicrosoftAppPassword: is required when MicrosoftAppType is SingleTenant (a client secret of the app registration)');
  }
  if (e.MicrosoftAppType === 'UserAssignedMSI') {
    if (!e.MicrosoftAppId) problems.push('MicrosoftAppId: is required when MicrosoftAppType is UserAssignedMSI (the client id of the user-assigned managed identity)');
    if (!e.MicrosoftAppTenantId) problems.push('MicrosoftAppTenantId: is required when MicrosoftAppType is UserAssignedMSI (the directory (tenant) id of the managed identity)');
    if (e.MicrosoftAppPassword) problems.push('MicrosoftAppPassword: must not be set when MicrosoftAppType is UserAssignedMSI (the managed identity gets its tokens from Azure; botbuilder refuses a password)');
  }
  if (problems.length > 0) {
    throw new SetupError('CONFIG_INVALID', `The configuration is not valid:\n  ${problems.join('\n  ')}`, {
      hint: 'Set the Bot Framework variables as the Azure Bot resource shows them (Configuration blade); see "Registering the bot as single-tenant" in the README.',
    });
  }
  const config: BotConfig = {
    port: e.PORT,
    host: e.HOST ?? (e.MicrosoftAppId ? '0.0.0.0' : '127.0.0.1'),
    hostExplicit: e.HOST !== undefined,
    auth,
    appId: e.MicrosoftAppId ?? '',
    production: e.NODE_ENV === 'production',
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    deployment: e.DEPLOYMENT,
    signingKey: e.JOB_SIGNING_KEY,
    operators: Object.freeze([...e.SETUP_OPERATORS]),
    approvers: Object.freeze([...e.SETUP_APPROVERS]),
    approvalTtlMinutes: e.APPROVAL_TTL_MINUTES,
    cardUpdateIntervalMs: e.CARD_UPDATE_INTERVAL_MS,
    logLevel: e.LOG_LEVEL,
    certWatchCron: e.CERT_WATCH_CRON.split(/\s+/).join(' '),
    certWatchThresholds: Object.freeze([...e.CERT_WATCH_THRESHOLDS]),
  };
  return Object.freeze(config);
}

const singleTenantHelp =
  'Set MicrosoftAppType=SingleTenant with MicrosoftAppId, MicrosoftAppPassword and MicrosoftAppTenantId (the directory id of the app registration), ' +
  'or MicrosoftAppType=UserAssignedMSI with MicrosoftAppId = the managed identity\'s client id and MicrosoftAppTenantId, and no MicrosoftAppPassword. ' +
  'See "Registering the bot as single-tenant" in the README.';

/**
 * The start-up rules for Bot Framework authentication; returns the warnings to log.
 *
 * - Authentication off (no MicrosoftAppId) is right for local tries (the Agents Playground sends no
 *   token) and wrong in production, where anyone could post activities as any user.
 * - Since 31 July 2025 new Azure Bot registrations are single-tenant or a user-assigned managed
 *   identity. botbuilder treats an unset MicrosoftAppType as MultiTenant and then asks the
 *   multi-tenant botframework.com authority for its tokens, which a single-tenant registration
 *   cannot get: in production only SingleTenant and UserAssignedMSI start; elsewhere the others
 *   start with a warning.
 *
 * The combinations botbuilder itself rejects (SingleTenant without a tenant id or a password,
 * UserAssignedMSI with a password) stop loadBotConfig in every environment.
 */
export function assertAuthenticationConfigured(config: BotConfig): string[] {
  const type = config.auth.MicrosoftAppType;
  if (config.production && !config.appId) {
    throw new SetupError(
      'CONFIG_INVALID',
      'Refusing to start in production (NODE_ENV=production) without Bot Framework authentication: MicrosoftAppId is not set, so anyone could post messages and approvals as any user.',
      { hint: singleTenantHelp },
    );
  }
  if (!config.appId || type === 'SingleTenant' || type === 'UserAssignedMSI') return [];
  const what = type === undefined ? 'MicrosoftAppType is not set, so botbuilder treats the bot as MultiTenant' : 'MicrosoftAppType is MultiTenant';
  const why = 'new Azure Bot registrations (since 31 July 2025) are single-tenant or a user-assigned managed identity, and such a bot fails to authenticate as MultiTenant';
  if (config.production) {
    throw new SetupError('CONFIG_INVALID', `Refusing to start in production (NODE_ENV=production): ${what}; ${why}.`, { hint: singleTenantHelp });
  }
  return [`${what}: ${why}. Production (NODE_ENV=production) refuses this. ${singleTenantHelp}`];
}
