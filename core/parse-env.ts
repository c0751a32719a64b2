import type { z } from 'zod';
import { SetupError } from './setup-error.ts';

/**
 * Parses an environment with a zod schema into a frozen object. A bad or missing variable stops
 * the start with a message that names each variable and what is wrong with it.
 */
export function parseEnv<S extends z.ZodTypeAny>(schema: S, env: NodeJS.ProcessEnv): Readonly<z.output<S>> {
  // Empty strings mean "not set", as in most .env files.
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== '') cleaned[key] = value.trim();
  }
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.') || '(environment)'}: ${issue.message}`);
    throw new SetupError('CONFIG_INVALID', `The configuration is not valid:\n${lines.join('\n')}`, {
      hint: 'Fix these variables (see .env.example for what each one means) and start again.',
    });
  }
  return Object.freeze(parsed.data) as Readonly<z.output<S>>;
}

/** Comma-separated list of Entra object IDs (GUIDs), lower-cased; empty means nobody. */
export function parseIdList(value: string | undefined): string[] {
  if (!value) return [];
  return value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
}
