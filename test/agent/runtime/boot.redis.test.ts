import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { bootAgent } from '../../../agent/runtime/boot.ts';
import { createLogger } from '../../../core/logger.ts';
import { SetupError } from '../../../core/setup-error.ts';
import { SIGNING_KEY } from '../support/redis-harness.ts';

const env = { JOB_SIGNING_KEY: SIGNING_KEY, CRM_URL: 'http://crm.invalid/org', CRM_AUTH: 'none', LOG_LEVEL: 'info' };

function capture() {
  const lines: { level: number; msg: string; code?: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
      done();
    },
  });
  return { lines, logger: (level: string | undefined) => createLogger({ name: 'agent', level: level ?? 'info', destination }) };
}

function fakeRedis() {
  const calls: string[] = [];
  const redis = {
    quit: () => {
      calls.push('quit');
      return Promise.resolve('OK');
    },
    disconnect: () => calls.push('disconnect'),
  } as unknown as Redis;
  return { redis, calls };
}

describe('bootAgent (npm run agent)', () => {
  it('when the agent cannot start, closes the Redis connection and logs the message and the hint', async () => {
    const { lines, logger } = capture();
    const { redis, calls } = fakeRedis();
    const booted = await bootAgent(env, {
      logger,
      connect: () => Promise.resolve(redis),
      start: () => Promise.reject(new SetupError('CRM_UNREACHABLE', 'Cannot reach CRM at http://crm.invalid.', { hint: 'Check CRM_URL.' })),
    });
    expect(booted).toBeUndefined();
    expect(calls).toEqual(['quit']);
    const fatal = lines.find((l) => l.level === 60);
    expect(fatal).toMatchObject({ code: 'CRM_UNREACHABLE', msg: 'The agent cannot start: Cannot reach CRM at http://crm.invalid.\nCheck CRM_URL.' });
  });

  it('disconnects when quit fails, and still reports', async () => {
    const { lines, logger } = capture();
    const { redis, calls } = fakeRedis();
    Object.assign(redis, { quit: () => Promise.reject(new Error('Connection is closed.')) });
    const booted = await bootAgent(env, { logger, connect: () => Promise.resolve(redis), start: () => Promise.reject(new Error('boom')) });
    expect(booted).toBeUndefined();
    expect(calls).toEqual(['disconnect']);
    expect(lines.find((l) => l.level === 60)).toMatchObject({ code: 'INTERNAL', msg: 'The agent cannot start: boom' });
  });

  it('reports a bad configuration without touching Redis', async () => {
    const { lines, logger } = capture();
    let connected = false;
    const booted = await bootAgent({ CRM_AUTH: 'none' }, { logger, connect: () => ((connected = true), Promise.reject(new Error('unreachable'))) });
    expect(booted).toBeUndefined();
    expect(connected).toBe(false);
    expect(lines.find((l) => l.level === 60)).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(lines.find((l) => l.level === 60)?.msg).toMatch(/JOB_SIGNING_KEY[\s\S]*\.env\.example/);
  });

  it('stops the agent, then closes Redis', async () => {
    const { logger } = capture();
    const { redis, calls } = fakeRedis();
    const booted = await bootAgent(env, {
      logger,
      connect: () => Promise.resolve(redis),
      start: () => Promise.resolve({ close: () => (calls.push('agent closed'), Promise.resolve()) }),
    });
    await booted?.stop();
    expect(calls).toEqual(['agent closed', 'quit']);
  });
});
