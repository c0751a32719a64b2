import { z } from 'zod';
import { parseEnv } from '../core/parse-env.ts';
import { deploymentSchema } from '../jobs/deployment.ts';
import { MIN_SIGNING_KEY_LENGTH } from '../jobs/envelope-signer.ts';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

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
  })
  .superRefine((env, ctx) => {
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
