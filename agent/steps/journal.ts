import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { stepIdSchema, type StepId } from '../../jobs/cert-types.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

/**
 * Redis hash of a run's step journal (every multi-step run: certificate rotations and rollbacks,
 * runbook runs): one field per step, plus the `_seq` counter. The key text `cert-steps:<runId>` is
 * older than the runbook and stays as it is, so a journal written before is still read.
 */
export function stepJournalKey(prefix: string, runId: string): string {
  return redisKeys.stepJournal(prefix, runId);
}

const entrySchema = z.object({
  state: z.enum(['done', 'failed']),
  detail: z.string().max(300).optional(),
  /** The step changed something the async services pick up only after a restart (restart-services runs again after it). */
  changed: z.boolean(),
  /** The step wrote something (the runbook's `changed` list); absent in entries written before the runbook. */
  wrote: z.boolean().optional(),
  /** Order of recording within the run, across attempts. */
  seq: z.number().int().nonnegative(),
  attempt: z.number().int().min(1),
  /** Public facts kept for a later attempt or run (the old certificate's DER); never secrets. */
  data: z.record(z.string(), z.string().max(20_000)).optional(),
}).strict();
export type JournalEntry = z.infer<typeof entrySchema>;

const storedSchema = z.object({ entry: z.string(), mac: z.string() }).strict();

export interface StepJournal {
  /** The intact entries of a run (an entry whose MAC does not verify is ignored: the step runs again). */
  load(runId: string): Promise<Map<StepId, JournalEntry>>;
  record(runId: string, id: StepId, entry: Omit<JournalEntry, 'seq'>): Promise<JournalEntry>;
  /**
   * Records, before a restart-trigger step runs, that it is about to change something (field
   * `_intent:<step>`, MACed, holding the seq). Sticky: only a later `done` entry of the step settles it.
   */
  markIntent(runId: string, id: StepId): Promise<number>;
  /** The intact intents of a run: step → the seq of its last intent. */
  intents(runId: string): Promise<Map<StepId, number>>;
}

const INTENT_PREFIX = '_intent:';
const intentSchema = z.object({ seq: z.number().int().nonnegative() }).strict();

/**
 * The step journal of every multi-step run (certificate and runbook runs): what each step did, per run, kept across attempts so a
 * resumed or retried job skips what is done. MACed with the signing key like the stored job
 * results (job-result-store.ts): a journal written into Redis by someone else cannot make the agent
 * skip a step or take a certificate from it. The TTL is renewed on every write.
 */
export function createStepJournal(options: { redis: Redis; prefix: string; signingKey: string; ttlMs: number }): StepJournal {
  const key = Buffer.from(options.signingKey, 'utf8');
  const mac = (redisKey: string, field: string, json: string) =>
    createHmac('sha256', key).update(`cert-steps\n${redisKey}\n${field}\n${json}`).digest('base64url');

  /** The JSON a MACed field holds, or undefined when it is not intact. */
  const verified = (redisKey: string, field: string, value: string): unknown => {
    let stored: z.infer<typeof storedSchema>;
    try {
      stored = storedSchema.parse(JSON.parse(value));
    } catch {
      return undefined;
    }
    const expected = Buffer.from(mac(redisKey, field, stored.entry));
    const actual = Buffer.from(stored.mac);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
    try {
      return JSON.parse(stored.entry) as unknown;
    } catch {
      return undefined;
    }
  };
  const write = async (redisKey: string, field: string, json: string) => {
    await options.redis
      .multi()
      .hset(redisKey, field, JSON.stringify({ entry: json, mac: mac(redisKey, field, json) }))
      .pexpire(redisKey, options.ttlMs)
      .exec();
  };

  return {
    async load(runId) {
      const redisKey = stepJournalKey(options.prefix, runId);
      const raw = await options.redis.hgetall(redisKey);
      const entries = new Map<StepId, JournalEntry>();
      for (const [field, value] of Object.entries(raw)) {
        const id = stepIdSchema.safeParse(field);
        if (!id.success) continue;
        const entry = entrySchema.safeParse(verified(redisKey, field, value));
        if (entry.success) entries.set(id.data, entry.data);
      }
      return entries;
    },
    async record(runId, id, partial) {
      const redisKey = stepJournalKey(options.prefix, runId);
      const seq = await options.redis.hincrby(redisKey, '_seq', 1);
      const entry = entrySchema.parse({ ...partial, seq });
      await write(redisKey, id, JSON.stringify(entry));
      return entry;
    },
    async markIntent(runId, id) {
      const redisKey = stepJournalKey(options.prefix, runId);
      const seq = await options.redis.hincrby(redisKey, '_seq', 1);
      await write(redisKey, `${INTENT_PREFIX}${id}`, JSON.stringify({ seq }));
      return seq;
    },
    async intents(runId) {
      const redisKey = stepJournalKey(options.prefix, runId);
      const raw = await options.redis.hgetall(redisKey);
      const intents = new Map<StepId, number>();
      for (const [field, value] of Object.entries(raw)) {
        if (!field.startsWith(INTENT_PREFIX)) continue;
        const id = stepIdSchema.safeParse(field.slice(INTENT_PREFIX.length));
        const intent = intentSchema.safeParse(verified(redisKey, field, value));
        if (id.success && intent.success) intents.set(id.data, intent.data.seq);
      }
      return intents;
    },
  };
}

