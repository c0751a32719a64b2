import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_OK, EXIT_REDIS, EXIT_USAGE, main } from '../../core/audit-cli.ts';
import { auditEntrySchema, createAuditLog } from '../../core/audit-log.ts';
import { redisHelp } from '../../core/redis-connection.ts';
import { deletePrefixedKeys } from '../support/delete-prefixed-keys.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const T0 = Date.UTC(2026, 11, 1, 10, 0, 0);

let redis: Redis;
const prefix = `t-${randomUUID()}`;
beforeAll(async () => {
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  let t = T0;
  const log = createAuditLog({ redis, prefix, now: () => t });
  for (let i = 0; i < 4; i++) {
    t = T0 + i * 60_000;
    await log.append({ deployment: 'contoso', actor: 'Olivia Operator', actorId: 'id-1', kind: 'command', what: `jobs ${i}`, outcome: 'accepted' });
  }
  await log.append({ deployment: 'fabrikam', actor: 'Fay', kind: 'click', what: 'run.approve', runId: 'abcdef12', outcome: 'ok' });
});
afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

function spawnCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(TSX, [join(ROOT, 'core', 'audit-cli.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

function jsonLines(text: string) {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const { id, ...entry } = JSON.parse(l) as Record<string, unknown>;
      expect(id).toMatch(/^\d+-\d+$/);
      return auditEntrySchema.parse(entry);
    });
}

const env = () => ({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: prefix, DEPLOYMENT: 'contoso' });

async function inProcess(argv: string[], environment: Record<string, string> = env()) {
  let stdout = '';
  let stderr = '';
  const code = await main({ argv, env: environment, stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

describe('npm run audit (spawned with tsx)', () => {
  it('export writes every entry of the deployment as JSON lines, oldest first', async () => {
    const res = await spawnCli(['export'], env());
    expect(res.stderr).toBe('');
    expect(res.code).toBe(EXIT_OK);
    const entries = jsonLines(res.stdout);
    expect(entries.map((e) => e.what)).toEqual(['jobs 0', 'jobs 1', 'jobs 2', 'jobs 3']);
    expect(entries.every((e) => e.deployment === 'contoso' && e.actorId === 'id-1')).toBe(true);
  });

  it('a bad argument exits 2 with the usage', async () => {
    const res = await spawnCli(['export', '--since', 'yesterday'], env());
    expect(res.code).toBe(EXIT_USAGE);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('--since needs an ISO date-time');
    expect(res.stderr).toContain('Usage:');
  });

  it('Redis unreachable exits 1 with what to do', async () => {
    const res = await spawnCli(['tail'], { ...env(), REDIS_URL: 'redis://127.0.0.1:1' });
    expect(res.code).toBe(EXIT_REDIS);
    expect(res.stderr).toContain('Cannot reach Redis at redis://127.0.0.1:1');
    expect(res.stderr).toContain(redisHelp);
  });
});

describe('audit cli (in process)', () => {
  it('export --since leaves older entries out; --deployment reads another deployment', async () => {
    // --since is compared with the stream id (the time Redis appended the entry): the entries were
    // appended during this test, so an hour ago keeps them all and an hour ahead none.
    const since = await inProcess(['export', '--since', new Date(Date.now() - 3_600_000).toISOString()]);
    expect(since.code).toBe(EXIT_OK);
    expect(jsonLines(since.stdout).length).toBe(4);
    const future = await inProcess(['export', '--since', new Date(Date.now() + 3_600_000).toISOString()]);
    expect(future.code).toBe(EXIT_OK);
    expect(future.stdout).toBe('');
    const other = await inProcess(['export', '--deployment', 'fabrikam']);
    expect(jsonLines(other.stdout).map((e) => [e.what, e.runId])).toEqual([['run.approve', 'abcdef12']]);
  });

  it('tail n prints the latest n, oldest of them first', async () => {
    const res = await inProcess(['tail', '2']);
    expect(res.code).toBe(EXIT_OK);
    expect(jsonLines(res.stdout).map((e) => e.what)).toEqual(['jobs 2', 'jobs 3']);
    expect(jsonLines((await inProcess(['tail'])).stdout)).toHaveLength(4);
  });

  it('refuses bad arguments and configuration with exit 2', async () => {
    for (const argv of [[], ['dump'], ['tail', '0'], ['tail', '1001'], ['tail', 'x'], ['tail', '1', '2'], ['export', 'x'], ['export', '--deployment', 'Bad Name'], ['export', '--nope'], ['tail', '--since', '2026-12-01T00:00:00Z']]) {
      const res = await inProcess(argv);
      expect({ argv, code: res.code }).toEqual({ argv, code: EXIT_USAGE });
      expect(res.stderr).toContain('Usage:');
      expect(res.stdout).toBe('');
    }
    const badEnv = await inProcess(['tail'], { ...env(), REDIS_PREFIX: 'has space' });
    expect(badEnv.code).toBe(EXIT_USAGE);
    expect(badEnv.stderr).toContain('REDIS_PREFIX');
    const help = await inProcess(['--help']);
    expect(help.code).toBe(EXIT_OK);
    expect(help.stdout).toContain('npm run audit -- export');
  });
});
