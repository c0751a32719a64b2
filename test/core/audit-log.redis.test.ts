import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEntrySchema, auditKey, createAuditLog } from '../../core/audit-log.ts';
import { deletePrefixedKeys } from '../support/delete-prefixed-keys.ts';

let redis: Redis;
const prefixes: string[] = [];
beforeAll(() => {
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
});
afterAll(async () => {
  for (const p of prefixes) await deletePrefixedKeys(redis, p);
  await redis.quit();
});

function freshPrefix(): string {
  const p = `t-${randomUUID()}`;
  prefixes.push(p);
  return p;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const T0 = Date.UTC(2026, 11, 1, 10, 0, 0);

describe('audit log', () => {
  it('appends to the deployment stream; latest is newest first, read oldest first', async () => {
    const prefix = freshPrefix();
    let t = T0;
    const log = createAuditLog({ redis, prefix, now: () => t });
    for (let i = 0; i < 5; i++) {
      t = T0 + i * 1000;
      await log.append({ deployment: 'contoso', actor: 'Olivia', actorId: 'id-1', kind: 'command', what: `jobs ${i}`, outcome: 'accepted' });
    }
    await log.append({ deployment: 'fabrikam', actor: 'Other', kind: 'command', what: 'elsewhere', outcome: 'accepted' });

    expect(await redis.xlen(auditKey(prefix, 'contoso'))).toBe(5);
    const latest = await log.latest('contoso', 3);
    expect(latest.map((e) => e.what)).toEqual(['jobs 4', 'jobs 3', 'jobs 2']);
    expect(latest[0]).toMatchObject({ at: new Date(T0 + 4000).toISOString(), actor: 'Olivia', actorId: 'id-1', kind: 'command', deployment: 'contoso' });
    expect(latest[0]?.id).toMatch(/^\d+-\d+$/);

    const all = await collect(log.read('contoso', { pageSize: 2 }));
    expect(all.map((e) => e.what)).toEqual(['jobs 0', 'jobs 1', 'jobs 2', 'jobs 3', 'jobs 4']);
    expect((await log.latest('fabrikam', 10)).map((e) => e.what)).toEqual(['elsewhere']);
    expect(await log.latest('nobody', 10)).toEqual([]);
  });

  it('read from `since` leaves older entries out (the stream id is the append time)', async () => {
    const prefix = freshPrefix();
    const log = createAuditLog({ redis, prefix });
    await log.append({ deployment: 'contoso', actor: 'a', kind: 'click', what: 'before', outcome: 'ok' });
    // The stream ids come from Redis's clock, not this process's: `since` is computed from the id
    // read back, and 'after' is appended once Redis's clock has passed that millisecond.
    const [first] = await log.latest('contoso', 1);
    const beforeMs = Number((first?.id ?? '').split('-')[0]);
    expect(Number.isInteger(beforeMs) && beforeMs > 0).toBe(true);
    for (;;) {
      const [sec, usec] = await redis.time();
      if (Number(sec) * 1000 + Math.floor(Number(usec) / 1000) > beforeMs) break;
    }
    await log.append({ deployment: 'contoso', actor: 'a', kind: 'click', what: 'after', outcome: 'ok' });
    expect((await collect(log.read('contoso', { since: new Date(beforeMs + 1).toISOString() }))).map((e) => e.what)).toEqual(['after']);
    expect((await collect(log.read('contoso', { since: new Date(beforeMs).toISOString() }))).map((e) => e.what)).toEqual(['before', 'after']);
    expect((await collect(log.read('contoso'))).map((e) => e.what)).toEqual(['before', 'after']);
    await expect(collect(log.read('contoso', { since: 'not a date' }))).rejects.toThrow(/not a date-time/);
  });

  it('clips long texts to the schema and refuses a bad kind', async () => {
    const prefix = freshPrefix();
    const log = createAuditLog({ redis, prefix });
    await log.append({ deployment: 'contoso', actor: 'x'.repeat(400), kind: 'result', what: 'w'.repeat(1000), outcome: 'o'.repeat(2000), runId: 'abcdef12' });
    const [entry] = await log.latest('contoso', 1);
    expect(entry?.actor).toHaveLength(200);
    expect(entry?.what).toHaveLength(300);
    expect(entry?.outcome).toHaveLength(500);
    expect(entry?.what.endsWith('…')).toBe(true);
    expect(entry?.runId).toBe('abcdef12');
    const { id: _id, ...stored } = entry!;
    expect(auditEntrySchema.safeParse(stored).success).toBe(true);
    await expect(log.append({ deployment: 'contoso', actor: 'a', kind: 'nonsense' as 'click', what: 'w', outcome: 'o' })).rejects.toThrow();
    expect(await redis.xlen(auditKey(prefix, 'contoso'))).toBe(1);
  });

  it('skips entries it cannot read instead of failing', async () => {
    const prefix = freshPrefix();
    const log = createAuditLog({ redis, prefix });
    await redis.xadd(auditKey(prefix, 'contoso'), '*', 'entry', '{not json');
    await redis.xadd(auditKey(prefix, 'contoso'), '*', 'other', 'x');
    await log.append({ deployment: 'contoso', actor: 'a', kind: 'step', what: 'step tenant-id', outcome: 'done' });
    expect((await log.latest('contoso', 10)).map((e) => e.what)).toEqual(['step tenant-id']);
    expect((await collect(log.read('contoso'))).map((e) => e.what)).toEqual(['step tenant-id']);
  });

  it('trims the stream to about maxEntries', async () => {
    const prefix = freshPrefix();
    const log = createAuditLog({ redis, prefix, maxEntries: 10 });
    for (let i = 0; i < 400; i++) await log.append({ deployment: 'contoso', actor: 'a', kind: 'command', what: `c${i}`, outcome: 'accepted' });
    const len = await redis.xlen(auditKey(prefix, 'contoso'));
    // MAXLEN ~ trims whole radix-tree nodes (100 entries by default): far fewer than 400 are kept.
    expect(len).toBeGreaterThanOrEqual(10);
    expect(len).toBeLessThan(400);
    expect((await log.latest('contoso', 1))[0]?.what).toBe('c399');
  });
});
