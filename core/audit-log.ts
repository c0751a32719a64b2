import type { Redis } from 'ioredis';
import { z } from 'zod';
import { redisKeys } from '../jobs/redis-keys.ts';

/**
 * The audit log (issue 4): every command, approval, click, step and result, appended to one Redis
 * stream per deployment, `<prefix>:audit:<deployment>`, capped at about `maxEntries` (oldest
 * trimmed). The bot appends what people do and what the results are; the agent appends what each
 * step did. Entries carry who, when, what and the outcome, never a secret: `what` and `outcome`
 * are short texts the callers build from parsed values (a command's kind and filter, a step's
 * detail), not raw input.
 */
export const auditKindSchema = z.enum(['command', 'refusal', 'approval', 'click', 'step', 'result']);
export type AuditKind = z.infer<typeof auditKindSchema>;

export const auditEntrySchema = z.object({
  /** ISO time of the event. */
  at: z.string().datetime(),
  deployment: z.string().max(64),
  /** Who: a person's name, or "agent <host>". */
  actor: z.string().max(200),
  /** A person's Entra object id (absent for the agent). */
  actorId: z.string().max(64).optional(),
  kind: auditKindSchema,
  /** What happened: "run setup (filter: all)", "approve", "step tenant-id". */
  what: z.string().max(300),
  runId: z.string().max(32).optional(),
  /** ok, refused, failed, done, skipped, … with a short reason. */
  outcome: z.string().max(500),
}).strict();
export type AuditEntry = z.infer<typeof auditEntrySchema>;

/** An entry as read back: with its stream id (time-ordered, unique). */
export type StoredAuditEntry = AuditEntry & { id: string };

export interface AuditLog {
  /** Appends one entry (`at` defaults to now). Texts longer than the schema allows are shortened. */
  append(entry: Omit<AuditEntry, 'at'> & { at?: string }): Promise<void>;
  /** The latest `n` entries of a deployment, newest first. */
  latest(deployment: string, n: number): Promise<StoredAuditEntry[]>;
  /** Every entry of a deployment from `since` (ISO; default: the oldest kept), oldest first, read in pages. */
  read(deployment: string, options?: { since?: string; pageSize?: number }): AsyncIterable<StoredAuditEntry>;
}

export interface AuditLogOptions {
  redis: Redis;
  prefix: string;
  now?: () => number;
  /** Approximate cap of the stream (XADD MAXLEN ~). Default 100,000. */
  maxEntries?: number;
}

export function auditKey(prefix: string, deployment: string): string {
  return redisKeys.audit(prefix, deployment);
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export function createAuditLog(options: AuditLogOptions): AuditLog {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;

  const decode = (id: string, fields: string[]): StoredAuditEntry | undefined => {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      if (fields[i] !== 'entry') continue;
      try {
        const parsed = auditEntrySchema.safeParse(JSON.parse(fields[i + 1] ?? ''));
        return parsed.success ? { id, ...parsed.data } : undefined;
      } catch {
        return undefined;
      }
    }
    return undefined;
  };

  return {
    async append(partial) {
      const entry = auditEntrySchema.parse({
        ...partial,
        at: partial.at ?? new Date(now()).toISOString(),
        actor: clip(partial.actor, 200),
        what: clip(partial.what, 300),
        outcome: clip(partial.outcome, 500),
      });
      await options.redis.xadd(auditKey(options.prefix, entry.deployment), 'MAXLEN', '~', String(maxEntries), '*', 'entry', JSON.stringify(entry));
    },
    async latest(deployment, n) {
      const count = Math.max(1, Math.min(1000, Math.floor(n)));
      const rows = await options.redis.xrevrange(auditKey(options.prefix, deployment), '+', '-', 'COUNT', count);
      return rows.map(([id, fields]) => decode(id, fields)).filter((e): e is StoredAuditEntry => e !== undefined);
    },
    async *read(deployment, readOptions = {}) {
      const key = auditKey(options.prefix, deployment);
      const pageSize = Math.max(1, Math.min(10_000, readOptions.pageSize ?? 1000));
      let start = readOptions.since ? String(Date.parse(readOptions.since)) : '-';
      if (start !== '-' && !/^\d+$/.test(start)) throw new Error(`"${readOptions.since ?? ''}" is not a date-time`);
      for (;;) {
        const rows = await options.redis.xrange(key, start, '+', 'COUNT', pageSize);
        for (const [id, fields] of rows) {
          const entry = decode(id, fields);
          if (entry) yield entry;
        }
        if (rows.length < pageSize) return;
        const last = rows[rows.length - 1];
        if (!last) return;
        start = `(${last[0]}`;
      }
    },
  };
}
