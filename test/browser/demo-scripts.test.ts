import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBotConfig } from '../../bot/bot-config.ts';
import { readCookie, rewriteActingUser } from '../../scripts/acting-user-proxy.ts';
import { childEnvironment, freePort, typingUserFromArgs } from '../../scripts/demo.ts';
import { formatPinoLine } from '../../scripts/log-format.ts';
import { parseListeningPort, playgroundCommand, playgroundConfigPath } from '../../scripts/playground.ts';
import { demoAuthorizationEnv, findPlaygroundUser, playgroundChats, playgroundUsers, renderPlaygroundYaml, requester } from '../../scripts/playground-users.ts';
import { ProcessGroup } from '../../scripts/process-group.ts';
import { localRedisPort, pingRedis, startLocalRedis } from '../../scripts/redis-check.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('.m365agentsplayground.yml', () => {
  it('is what scripts/playground-users.ts renders', () => {
    expect(readFileSync(playgroundConfigPath, 'utf8')).toBe(renderPlaygroundYaml());
  });

  it('has 6 people with unique ids and GUIDs, an operator (the current user), approvers and people without rights', () => {
    expect(playgroundUsers).toHaveLength(6);
    expect(new Set(playgroundUsers.map((u) => u.id)).size).toBe(6);
    expect(new Set(playgroundUsers.map((u) => u.aadObjectId)).size).toBe(6);
    for (const u of playgroundUsers) expect(u.aadObjectId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(requester.role).toBe('operator');
    expect(playgroundUsers.some((u) => u.role === 'approver')).toBe(true);
    expect(playgroundUsers.some((u) => u.role === 'none')).toBe(true);
  });

  it('gives the bot authorization lists it accepts, matching the roles', () => {
    const config = loadBotConfig({ JOB_SIGNING_KEY: 'x'.repeat(40), ...demoAuthorizationEnv() });
    expect(config.operators).toEqual(playgroundUsers.filter((u) => u.role === 'operator').map((u) => u.aadObjectId));
    expect(config.approvers).toEqual(playgroundUsers.filter((u) => u.role === 'approver').map((u) => u.aadObjectId));
  });

  it('is accepted by the Agents Playground, which serves our people and chats', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'playground-config-'));
    dirs.push(dir);
    // A stand-in bot endpoint: the Playground waits (up to 15 s) for its endpoint before it answers.
    const bot = createServer((_req, res) => res.end());
    await new Promise<void>((resolve) => bot.listen(0, '127.0.0.1', resolve));
    const botPort = (bot.address() as AddressInfo).port;
    const pg = playgroundCommand({ appEndpoint: `http://127.0.0.1:${botPort}/api/messages`, port: await freePort(), logFile: join(dir, 'pg.log') });
    const child = spawn(pg.command, pg.args, { env: pg.env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the Playground did not start')), 20_000);
        for (const stream of [child.stdout, child.stderr]) {
          createInterface({ input: stream }).on('line', (line) => {
            const p = parseListeningPort(line);
            if (p !== undefined) {
              clearTimeout(timer);
              resolve(p);
            }
          });
        }
        child.once('exit', (code) => reject(new Error(`the Playground exited (${code})`)));
      });
      const res = await fetch(`http://127.0.0.1:${port}/_internal/v1/config`);
      const body = (await res.json()) as {
        config: { currentUser: { id: string; aadObjectId: string }; users: { id: string; aadObjectId: string }[]; teams: { channels: { id: string; name: string }[] }[] };
      };
      expect(body.config.currentUser.aadObjectId).toBe(requester.aadObjectId);
      expect([body.config.currentUser, ...body.config.users].map((u) => u.aadObjectId)).toEqual(playgroundUsers.map((u) => u.aadObjectId));
      expect(body.config.teams[0]?.channels.map((c) => c.name)).toEqual(['General', playgroundChats.channelName]);
    } finally {
      child.kill('SIGTERM');
      bot.close();
    }
  }, 30_000);
});

describe('acting-user proxy', () => {
  const personal = playgroundChats.personalChatId;
  const invoke = { name: 'adaptiveCard/action', value: { action: { verb: 'run.approve' } }, from: { id: 'user-olivia' }, conversation: { id: 'channel-x' }, replyToId: '1' };

  it('rewrites from.id of card actions outside the personal chat', () => {
    expect(rewriteActingUser('/_conversation/v1/invoke', invoke, 'user-adam', personal)).toEqual({ ...invoke, from: { id: 'user-adam' } });
    expect(rewriteActingUser('/_conversation/v1/submit', invoke, 'user-adam', personal)?.from).toEqual({ id: 'user-adam' });
  });

  it('leaves everything else alone', () => {
    expect(rewriteActingUser('/_conversation/v1/invoke', invoke, undefined, personal)).toBeUndefined();
    expect(rewriteActingUser('/_conversation/v1/invoke', invoke, 'user-olivia', personal)).toBeUndefined();
    expect(rewriteActingUser('/_conversation/v1/invoke', { ...invoke, conversation: { id: personal } }, 'user-adam', personal)).toBeUndefined();
    expect(rewriteActingUser('/_conversation/v1/conversations/channel-x/messages', { from: { id: 'user-olivia' } }, 'user-adam', personal)).toBeUndefined();
    expect(rewriteActingUser('/_conversation/v1/invoke', 'text', 'user-adam', personal)).toBeUndefined();
  });

  it('reads its cookie', () => {
    expect(readCookie('a=1; setup_acting_user=user-adam; b=2', 'setup_acting_user')).toBe('user-adam');
    expect(readCookie(undefined, 'setup_acting_user')).toBeUndefined();
  });
});

describe('typing as someone else (npm start -- --as <name>)', () => {
  it('picks the person by first name, full name or id, and refuses an unknown one', () => {
    const uma = findPlaygroundUser('Uma');
    expect(uma?.role).toBe('none');
    expect(typingUserFromArgs([])).toBe(requester);
    expect(typingUserFromArgs(['--open', '--as', 'uma'])).toBe(uma);
    expect(typingUserFromArgs(['--as', 'Adam Approver'])?.role).toBe('approver');
    expect(typingUserFromArgs(['--as', 'user-lee'])?.givenName).toBe('Lee');
    expect(() => typingUserFromArgs(['--as', 'mallory'])).toThrow(/--as needs one of: olivia, adam, uma/);
    expect(() => typingUserFromArgs(['--as'])).toThrow(/--as needs one of/);
  });

  it('renders a config with that person as the current user and the other five as users', () => {
    const uma = findPlaygroundUser('uma');
    if (!uma) throw new Error('no uma');
    const yaml = renderPlaygroundYaml(uma);
    expect(yaml).toContain(`currentUser:\n  id: ${uma.id}\n`);
    const listed = [...yaml.matchAll(/^ {2}- id: (\S+)$/gm)].map((m) => m[1]);
    expect(listed).toEqual(playgroundUsers.filter((u) => u !== uma).map((u) => u.id));
    expect(listed).toContain(requester.id);
  });
});

describe('demo environment', () => {
  it('drops Bot Framework credentials (the Playground sends no token) and points the agent at the simulator', () => {
    const env = childEnvironment(
      {
        REDIS_URL: 'redis://127.0.0.1:6379',
        REDIS_PREFIX: 'setup-demo',
        DEPLOYMENT: 'default',
        LOG_LEVEL: 'info',
        PORT: 3978,
        SIM_PORT: 3979,
        SIM_ORG: 'contoso',
        SIM_MAILBOXES: 540,
        SIM_TEST_DELAY_MS: 3000,
        SIM_GRAPH_PORT: 3980,
        SIM_CERT_DAYS_LEFT: 12,
        TEST_POLL_INTERVAL_MS: 2000,
        PLAYGROUND_PORT: 56150,
      },
      'k'.repeat(40),
      { PATH: '/bin', MicrosoftAppId: 'x', MicrosoftAppPassword: 'y', NODE_ENV: 'production' },
      { certificates: { dir: '/srv/demo/certs', password: 'pfx-pass' }, tlsDir: '/srv/demo/tls' },
    );
    // The certificate side: the stand-in as PowerShell, the Graph simulator trusted through its CA.
    expect(env.POWERSHELL).toMatch(/sim\/bin\/pwsh-sim\.mjs$/);
    expect(env.PWSH_SIM_URL).toBe('http://127.0.0.1:3979');
    expect(env.CERT_DIR).toBe('/srv/demo/certs');
    expect(env.GRAPH_LOGIN_URL).toBe('https://127.0.0.1:3980');
    expect(env.GRAPH_URL).toBe('https://127.0.0.1:3980/graph');
    expect(env.TLS_CA_FILE).toBe('/srv/demo/tls/graph-simulator-ca.pem');
    expect(env.SIM_TLS_DIR).toBe('/srv/demo/tls');
    expect(env.SIM_CERT_DAYS_LEFT).toBe('12');
    expect(env.MicrosoftAppId).toBeUndefined();
    expect(env.MicrosoftAppPassword).toBeUndefined();
    expect(env.NODE_ENV).toBe('development');
    expect(env.CRM_URL).toBe('http://127.0.0.1:3979/contoso');
    expect(env.SIM_MAILBOXES).toBe('540');
    expect(env.CRM_AUTH).toBe('none');
    expect(env.SETUP_APPROVERS).toBe(demoAuthorizationEnv().SETUP_APPROVERS);
    expect(env.PATH).toBe('/bin');
  });
});

describe('log lines', () => {
  it('summarises pino JSON and passes other text through', () => {
    const line = JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 1, 12, 3, 4), pid: 1, hostname: 'h', name: 'bot', msg: 'listening', port: 3978 });
    expect(formatPinoLine(line)).toBe('12:03:04 INFO  listening port=3978');
    expect(formatPinoLine('Listening on 56150')).toBe('Listening on 56150');
    expect(formatPinoLine('{not json}')).toBe('{not json}');
  });
});

describe('process group', () => {
  const node = process.execPath;

  it('prefixes output, reports the first unexpected exit by name, and stops the rest', async () => {
    const lines: string[] = [];
    let exit: { name: string; code: number | string } | undefined;
    const group = new ProcessGroup({ write: (t) => lines.push(t), killAfterMs: 1000, onUnexpectedExit: (e) => (exit = e) });
    const sleeper = group.start({ name: 'sleeper', command: node, args: ['-e', 'console.log("up"); setInterval(() => {}, 1000)'] });
    const crasher = group.start({ name: 'crasher', command: node, args: ['-e', 'console.log("bye"); process.exit(3)'] });
    expect(await crasher.exited).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(exit).toEqual({ name: 'crasher', code: 3 });
    await group.stop();
    expect(await sleeper.exited).toBe('SIGTERM');
    expect(lines.join('')).toMatch(/crasher +\| bye/);
  });

  it('kills a process that ignores SIGTERM, and reports no exit while stopping', async () => {
    let reported = false;
    const group = new ProcessGroup({ write: () => undefined, killAfterMs: 300, onUnexpectedExit: () => (reported = true) });
    const stubborn = group.start({ name: 'stubborn', command: node, args: ['-e', 'process.on("SIGTERM", () => {}); console.log("ready"); setInterval(() => {}, 1000)'] });
    await new Promise<void>((resolve) => stubborn.onLine((l) => l === 'ready' && resolve()));
    await group.stop();
    expect(await stubborn.exited).toBe('SIGKILL');
    expect(reported).toBe(false);
  });
});

describe('Redis check', () => {
  it('pings the test Redis, and says no quickly where nothing listens', async () => {
    expect(await pingRedis('redis://127.0.0.1:6379')).toBe(true);
    const started = Date.now();
    expect(await pingRedis(`redis://127.0.0.1:${await freePort()}`, 1000)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('starts a local server only for a plain local URL', () => {
    expect(localRedisPort('redis://127.0.0.1:6390')).toBe(6390);
    expect(localRedisPort('redis://localhost')).toBe(6379);
    expect(localRedisPort('redis://redis.contoso.local:6379')).toBeUndefined();
    expect(localRedisPort('rediss://127.0.0.1:6380')).toBeUndefined();
    expect(localRedisPort('redis://:secret@127.0.0.1:6379')).toBeUndefined();
  });

  it('starts an ephemeral redis-server and stops it', async () => {
    const port = await freePort();
    const redis = await startLocalRedis(port);
    expect(await pingRedis(`redis://127.0.0.1:${port}`)).toBe(true);
    await redis.stop();
    expect(await pingRedis(`redis://127.0.0.1:${port}`, 500)).toBe(false);
  });
});
