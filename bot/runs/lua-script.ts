import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { z } from 'zod';

/**
 * A Lua script of the bot, kept as `lua/<name>.lua` next to this file (its header says what KEYS and
 * ARGV hold and what it returns, as BullMQ's scripts do) and run atomically with EVAL. The reply is
 * parsed with the script's zod schema, so a script and its caller cannot drift apart silently: an
 * unexpected reply is an error that names the script.
 *
 * `{{name}}` in the source is replaced from `substitutions` when the file is read (once, at import):
 * a value the TypeScript side owns, such as the list of final run states.
 */
export class LuaScript<S extends z.ZodTypeAny> {
  readonly name: string;
  readonly source: string;
  readonly #reply: S;

  constructor(name: string, reply: S, substitutions: Readonly<Record<string, string>> = {}) {
    this.name = name;
    this.#reply = reply;
    const raw = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
    this.source = raw.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => {
      const value = substitutions[key];
      if (value === undefined) throw new Error(`lua/${name}.lua: no value for ${whole}`);
      return value;
    });
  }

  /** Runs the script with these keys and arguments and returns its parsed reply. */
  async run(redis: Redis, keys: readonly string[], args: readonly string[]): Promise<z.output<S>> {
    const raw: unknown = await redis.eval(this.source, keys.length, ...keys, ...args);
    const parsed = this.#reply.safeParse(raw);
    if (!parsed.success) throw new Error(`Lua script ${this.name} replied ${JSON.stringify(raw)?.slice(0, 200)}, not what it declares: ${parsed.error.message}`);
    return parsed.data as z.output<S>;
  }
}
