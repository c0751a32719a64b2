import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { deploymentSchema } from '../jobs/deployment.ts';
import { createAuditLog, type StoredAuditEntry } from './audit-log.ts';
import { CliUsageError, EXIT_USAGE, reportUsageError } from './cli-usage-error.ts';
import { parseEnv } from './parse-env.ts';
import { connectRedis, redisHelp } from './redis-connection.ts';
import { isSetupError } from './setup-error.ts';

/**
 * `npm run audit -- export [--since <ISO date-time>] [--deployment <name>]`
 * `npm run audit -- tail [n] [--deployment <name>]`
 *
 * Reads the deployment's audit log (the Redis stream `<prefix>:audit:<deployment>`) and writes the
 * entries as JSON lines to stdout, oldest first: every entry (from --since) for `export`, the latest
 * n for `tail`. REDIS_URL, REDIS_PREFIX and DEPLOYMENT come from the environment, as for the bot.
 * Exit codes: 0 done, 1 Redis unreachable, 2 usage or configuration error.
 */

export const EXIT_OK = 0;
export const EXIT_REDIS = 1;
export { EXIT_USAGE };

export const TAIL_DEFAULT = 20;
export const TAIL_MAX = 1000;

export const auditCliUsage = `Usage:
  npm run audit -- export [--since <ISO date-time>] [--deployment <name>]
      Every entry of the deployment's audit log (from --since, e.g. 2026-12-01T00:00:00Z), oldest first.
  npm run audit -- tail [n] [--deployment <name>]
      The latest n entries (default ${TAIL_DEFAULT}, at most ${TAIL_MAX}), oldest first.
Entries are written to stdout as JSON lines. REDIS_URL, REDIS_PREFIX and DEPLOYMENT are read from the
environment (defaults redis://127.0.0.1:6379, setup, default); --deployment overrides DEPLOYMENT.
Exit codes: 0 done, 1 Redis unreachable, 2 usage or configuration error.`;

const auditCliEnvSchema = z.object({
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 letters, digits, dots, dashes or underscores').default('setup'),
  DEPLOYMENT: deploymentSchema.default('default'),
});

const sinceSchema = z.string().datetime({ offset: true });

export interface AuditCliDeps {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Writes to stdout; may return a promise that settles when the text is taken (backpressure). */
  stdout: (text: string) => void | Promise<void>;
  stderr: (text: string) => void;
  /** Opens Redis (tests: a fake); default connectRedis. */
  connect?: (url: string) => Promise<Redis>;
}

type Request = { command: 'export'; since?: string; deployment?: string } | { command: 'tail'; count: number; deployment?: string };

export async function main(deps: AuditCliDeps): Promise<number> {
  let request: Request | 'help';
  let env: z.output<typeof auditCliEnvSchema>;
  try {
    request = parseRequest(deps.argv);
    if (request === 'help') {
      await deps.stdout(`${auditCliUsage}\n`);
      return EXIT_OK;
    }
    env = parseEnv(auditCliEnvSchema, deps.env as NodeJS.ProcessEnv);
  } catch (error) {
    return reportUsageError(error, auditCliUsage, deps.stderr);
  }

  let redis: Redis;
  try {
    redis = await (deps.connect ?? ((url) => connectRedis(url, { maxRetriesPerRequest: 1 })))(env.REDIS_URL);
  } catch (error) {
    const message = isSetupError(error) ? error.message : 'Cannot reach Redis.';
    deps.stderr(`${message}\n${redisHelp}\n`);
    return EXIT_REDIS;
  }
  try {
    const log = createAuditLog({ redis, prefix: env.REDIS_PREFIX });
    const deployment = request.deployment ?? env.DEPLOYMENT;
    if (request.command === 'export') {
      for await (const entry of log.read(deployment, request.since ? { since: request.since } : {})) {
        await deps.stdout(line(entry));
      }
    } else {
      const latest = await log.latest(deployment, request.count);
      for (const entry of latest.reverse()) await deps.stdout(line(entry));
    }
    return EXIT_OK;
  } catch (error) {
    // Redis went away while reading (the connection was checked at start).
    deps.stderr(`Reading the audit log failed: ${error instanceof Error ? error.message : String(error)}\n${redisHelp}\n`);
    return EXIT_REDIS;
  } finally {
    redis.disconnect();
  }
}

function line(entry: StoredAuditEntry): string {
  return `${JSON.stringify(entry)}\n`;
}

function parseRequest(argv: readonly string[]): Request | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        since: { type: 'string' },
        deployment: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // Node's message quotes the argument; keep only its first sentence.
    const message = error instanceof Error ? error.message.split('. ')[0] : undefined;
    throw new CliUsageError(message ?? 'Cannot read the arguments.');
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === 'help') return 'help';
  let deployment: string | undefined;
  if (values.deployment !== undefined) {
    const d = deploymentSchema.safeParse(values.deployment);
    if (!d.success) throw new CliUsageError(`--deployment: ${d.error.issues[0]?.message ?? 'not a deployment name'}.`);
    deployment = d.data;
  }
  const withDeployment = deployment === undefined ? {} : { deployment };
  if (command === 'export') {
    if (rest.length > 0) throw new CliUsageError('`export` takes no other argument than --since and --deployment.');
    if (values.since === undefined) return { command: 'export', ...withDeployment };
    if (!sinceSchema.safeParse(values.since).success) {
      throw new CliUsageError('--since needs an ISO date-time with its time zone, such as 2026-12-01T00:00:00Z.');
    }
    return { command: 'export', since: values.since, ...withDeployment };
  }
  if (command === 'tail') {
    if (values.since !== undefined) throw new CliUsageError('--since is for `export`.');
    if (rest.length > 1) throw new CliUsageError('`tail` takes one number at most.');
    const n = rest[0] === undefined ? TAIL_DEFAULT : /^\d{1,4}$/.test(rest[0]) ? Number(rest[0]) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > TAIL_MAX) throw new CliUsageError(`\`tail [n]\`: n is a whole number from 1 to ${TAIL_MAX}.`);
    return { command: 'tail', count: n, ...withDeployment };
  }
  throw new CliUsageError(command === undefined ? 'Say what to do: export or tail.' : 'Unknown command: use export or tail.');
}

/** True when this module is the program tsx was started with (not imported by a test). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

function writeStdout(text: string): void | Promise<void> {
  if (process.stdout.write(text)) return;
  // A closed pipe (`| head`) never drains: stop waiting on its error too.
  return new Promise((resolve) => {
    process.stdout.once('drain', () => resolve());
    process.stdout.once('error', () => resolve());
  });
}

if (isEntryPoint()) {
  main({
    argv: process.argv.slice(2),
    env: process.env,
    stdout: writeStdout,
    stderr: (text) => process.stderr.write(text),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`Unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = EXIT_USAGE;
    },
  );
}
