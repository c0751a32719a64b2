import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { startActingUserProxy, type ActingUserProxy } from './acting-user-proxy.ts';
import { formatPinoLine } from './log-format.ts';
import { defaultPlaygroundPort, parseListeningPort, playgroundCommand, repoRoot } from './playground.ts';
import { demoAuthorizationEnv, findPlaygroundUser, playgroundChats, playgroundUsers, renderPlaygroundYaml, requester, type PlaygroundUser } from './playground-users.ts';
import { ProcessGroup, type ManagedProcess } from './process-group.ts';
import { writeDemoCertificates, type DemoCertificates } from '../sim/demo-certificates.ts';
import { GRAPH_SIM_CA_FILE_NAME, graphSimulatorUrls } from '../sim/graph-simulator.ts';
import { simAgentEnvironment } from '../sim/sim-agent-env.ts';
import type { SimScenario } from '../sim/sim-state.ts';
import { clearPrefix, findOnPath, localRedisPort, pingRedis, redisHowTo, startLocalRedis, type LocalRedis } from './redis-check.ts';

/**
 * `npm start`: the whole product on one machine. Checks Redis (starts an ephemeral local one when
 * none answers and redis-server is installed), then runs the CRM simulator, the bot and the agent
 * as child processes with one merged log, waits until they answer, starts the Microsoft 365 Agents
 * Playground behind the "acting as" proxy, and says what to type. Ctrl-C stops everything; if any
 * child exits on its own, everything stops and the demo exits non-zero naming it.
 *
 * Options: `--open` opens the Playground in the system browser; `--raw-logs` prints the JSON logs
 * as they are; `--fresh` starts the simulator with a fresh, unconfigured deployment
 * (SIM_SCENARIO=fresh) for `@setup run setup`.
 */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const demoEnvSchema = z.object({
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).default('setup-demo'),
  DEPLOYMENT: z.string().min(1).default('default'),
  JOB_SIGNING_KEY: z.string().min(32).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PORT: int(1, 65_535).default(3978),
  SIM_PORT: int(1, 65_535).default(3979),
  SIM_ORG: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('contoso'),
  // 540 seeded mailboxes give a little over 300 pending ones: the demo's "approve 300 mailboxes".
  SIM_MAILBOXES: int(1, 200_000).default(540),
  SIM_TEST_DELAY_MS: int(0, 86_400_000).default(3000),
  SIM_GRAPH_PORT: int(1, 65_535).default(3980),
  // 12 days left: `cert watch here` posts the 14-day rotation-due card at once.
  SIM_CERT_DAYS_LEFT: int(-3650, 3650).default(12),
  TEST_POLL_INTERVAL_MS: int(10, 3_600_000).default(2000),
  PLAYGROUND_PORT: int(1, 65_535).default(defaultPlaygroundPort),
});
type DemoEnv = z.output<typeof demoEnvSchema>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where the demo keeps what an administrator would put on the agent host: PFX files and the simulator's CA. */
export interface DemoFiles {
  certificates: Pick<DemoCertificates, 'dir' | 'password'>;
  tlsDir: string;
}

/** The environment every child gets: the caller's, minus what must not leak into the demo. */
export function childEnvironment(
  env: DemoEnv,
  signingKey: string,
  base: NodeJS.ProcessEnv,
  files: DemoFiles,
  options: { scenario?: SimScenario } = {},
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...base };
  // The Playground sends no token: the bot must run unauthenticated, which it refuses in production.
  for (const key of ['MicrosoftAppId', 'MicrosoftAppPassword', 'MicrosoftAppType', 'MicrosoftAppTenantId']) delete out[key];
  return {
    ...out,
    NODE_ENV: 'development',
    REDIS_URL: env.REDIS_URL,
    REDIS_PREFIX: env.REDIS_PREFIX,
    DEPLOYMENT: env.DEPLOYMENT,
    JOB_SIGNING_KEY: signingKey,
    LOG_LEVEL: env.LOG_LEVEL,
    // Simulator
    SIM_PORT: String(env.SIM_PORT),
    SIM_HOST: '127.0.0.1',
    SIM_ORG: env.SIM_ORG,
    SIM_MAILBOXES: String(env.SIM_MAILBOXES),
    SIM_TEST_DELAY_MS: String(env.SIM_TEST_DELAY_MS),
    SIM_GRAPH_PORT: String(env.SIM_GRAPH_PORT),
    SIM_CERT_DAYS_LEFT: String(env.SIM_CERT_DAYS_LEFT),
    SIM_TLS_DIR: files.tlsDir,
    SIM_SCENARIO: options.scenario ?? 'configured',
    // Bot: the people of .m365agentsplayground.yml
    PORT: String(env.PORT),
    ...demoAuthorizationEnv(),
    // Agent: the simulator, without authentication, polling often so the demo moves
    CRM_URL: `http://127.0.0.1:${env.SIM_PORT}/${env.SIM_ORG}`,
    CRM_AUTH: 'none',
    TEST_POLL_INTERVAL_MS: String(env.TEST_POLL_INTERVAL_MS),
    PROGRESS_INTERVAL_MS: base.PROGRESS_INTERVAL_MS ?? '1000',
    HEARTBEAT_INTERVAL_MS: base.HEARTBEAT_INTERVAL_MS ?? '5000',
    // Agent, certificate side: the PowerShell stand-in and the Graph simulator, configured with the
    // variables an administrator sets on a CRM server.
    ...simAgentEnvironment({
      crmBaseUrl: `http://127.0.0.1:${env.SIM_PORT}`,
      graph: { ...graphSimulatorUrls('127.0.0.1', env.SIM_GRAPH_PORT), caFile: resolve(files.tlsDir, GRAPH_SIM_CA_FILE_NAME) },
      certDir: files.certificates.dir,
      pfxPassword: files.certificates.password,
    }),
  };
}

/** Polls a URL until it answers with a status below 500, or fails after the timeout. */
export async function waitForHttp(url: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (options.signal?.aborted) throw new Error('stopped');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status < 500) return;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(300);
  }
  throw new Error(`${url} did not answer within ${options.timeoutMs / 1000} s (${last})`);
}

/** Polls until a file exists, or fails after the timeout. */
export async function waitForFile(path: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  while (!existsSync(path)) {
    if (options.signal?.aborted) throw new Error('stopped');
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${options.timeoutMs / 1000} s`);
    await sleep(200);
  }
}

/** Waits for the Playground's "Listening on <port>" line. */
function waitForListening(p: ManagedProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`the Agents Playground did not start within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const off = p.onLine((line) => {
      const port = parseListeningPort(line);
      if (port === undefined) return;
      clearTimeout(timer);
      off();
      resolvePort(port);
    });
    void p.exited.then(() => {
      clearTimeout(timer);
      off();
      reject(new Error('the Agents Playground exited'));
    });
  });
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const roleText = (u: PlaygroundUser): string =>
  u.role === 'none' ? 'neither an operator nor an approver: your commands are refused' : `an ${u.role}`;

/** `--as <name>`: who the Playground types as (default the requester, Olivia Operator). */
export function typingUserFromArgs(args: readonly string[]): PlaygroundUser {
  const i = args.indexOf('--as');
  if (i === -1) return requester;
  const who = args[i + 1];
  const found = who === undefined ? undefined : findPlaygroundUser(who);
  if (!found) {
    throw new Error(`--as needs one of: ${playgroundUsers.map((u) => u.givenName.toLowerCase()).join(', ')}`);
  }
  return found;
}

function instructions(playgroundUrl: string, typing: PlaygroundUser, scenario: SimScenario): string {
  const approver = playgroundUsers.find((u) => u.role === 'approver');
  const stranger = playgroundUsers.find((u) => u.role === 'none');
  const fresh =
    scenario === 'fresh'
      ? [
          ' Started with --fresh: an UNCONFIGURED deployment (no Exchange Online profile, no S2S, no tenant ID).',
          '   @setup preflight            read-only checks, and the two checklist questions',
          '   @setup run setup --dry-run  what each step would change',
          `   @setup run setup            confirm the checklist, then Approve as ${approver?.name ?? 'an approver'}: every step runs,`,
          '                               ending with a Test & Enable report; run it again: "nothing to change"',
          '',
        ]
      : [' (`npm start -- --fresh` starts an unconfigured deployment instead, for `@setup run setup`.)', ''];
  return [
    '',
    '────────────────────────────────────────────────────────────────────────────',
    ` Ready. Open ${playgroundUrl}  (the Microsoft 365 Agents Playground)`,
    '',
    ...fresh,
    ` You are ${typing.name} (${roleText(typing)}). In the team channel "${playgroundChats.channelName}"`,
    ` or the group chat "${playgroundChats.groupChatName}", type @setu, pick "setup" from the list, then:`,
    '   @setup help                 the commands',
    '   @setup approve mailboxes    a plan card: how many pending mailboxes, a sample',
    `   then, in the "Clicking cards as" box (bottom left), pick ${approver?.name ?? 'an approver'} and click Approve:`,
    '                               the run card counts up, then a results card',
    '   @setup test mailboxes       Confirm, and watch the Test & Enable results arrive',
    '   @setup status               agent heartbeat and mailbox counts',
    '   @setup cert watch here      the S2S certificate has 12 days left: a rotation-due card appears',
    `   click Start rotation, then Approve as ${approver?.name ?? 'an approver'} (not the requester): the run card walks`,
    '                               through the nine steps; `cert rotate s2s-weak.pfx` shows a refused plan',
    '   @setup cert status          CRM, the async servers and Entra ID: do they agree?',
    `   click a plan card's Approve as ${stranger?.name ?? 'someone else'}: the bot refuses and changes nothing`,
    ` Typed messages come from ${typing.name} (the Playground cannot switch the typing user):`,
    typing === requester
      ? `  start with \`npm start -- --as ${stranger?.givenName.toLowerCase() ?? 'uma'}\` to type as someone without rights.`
      : `  start without --as to type as ${requester.name}, who may run commands.`,
    ' In the Personal Chat, type the commands without @setup.',
    '',
    ' Ctrl-C stops everything.',
    '────────────────────────────────────────────────────────────────────────────',
    '',
  ].join('\n');
}

function openBrowser(url: string): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open';
  const args = process.platform === 'win32' ? ['/c', 'start', '', url] : [url];
  try {
    const child = spawn(command, args, { stdio: 'ignore', detached: true });
    child.on('error', () => console.log(`(could not open a browser: open ${url} yourself)`));
    child.unref();
  } catch {
    console.log(`(could not open a browser: open ${url} yourself)`);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const argv = new Set(args);
  let typing: PlaygroundUser;
  try {
    typing = typingUserFromArgs(args);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  const parsed = demoEnvSchema.safeParse(Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== undefined && v.trim() !== '')));
  if (!parsed.success) {
    for (const issue of parsed.error.issues) console.error(`  ${issue.path.join('.')}: ${issue.message}`);
    console.error('Fix these variables (see .env.example) and start again.');
    process.exit(2);
  }
  const env = parsed.data;
  const signingKey = env.JOB_SIGNING_KEY ?? randomBytes(36).toString('base64url');
  const stopSignal = new AbortController();
  let localRedis: LocalRedis | undefined;
  let proxy: ActingUserProxy | undefined;
  let exitCode: number | undefined;

  const group = new ProcessGroup({
    onUnexpectedExit: ({ name, code }) => {
      group.print('demo', `${name} exited unexpectedly (${code}): stopping everything.`);
      void shutdown(1, `${name} stopped`);
    },
  });

  const shutdown = async (code: number, why?: string): Promise<void> => {
    if (exitCode !== undefined) return;
    exitCode = code;
    stopSignal.abort();
    if (why) group.print('demo', `stopping (${why})…`);
    const force = setTimeout(() => process.exit(code || 1), 20_000);
    force.unref();
    await group.stop();
    await proxy?.close();
    await localRedis?.stop();
    group.print('demo', code === 0 ? 'stopped.' : `stopped; exit code ${code}.`);
    process.exit(code);
  };
  process.once('SIGINT', () => void shutdown(0, 'Ctrl-C'));
  process.once('SIGTERM', () => void shutdown(0, 'SIGTERM'));

  // 1. Redis
  if (!(await pingRedis(env.REDIS_URL))) {
    const port = localRedisPort(env.REDIS_URL);
    const server = findOnPath('redis-server');
    if (port === undefined || !server) {
      console.error(redisHowTo(env.REDIS_URL));
      process.exit(1);
    }
    group.print('redis', `nothing answers at ${env.REDIS_URL}: starting a local redis-server on port ${port} (ephemeral: nothing is saved)`);
    try {
      localRedis = await startLocalRedis(port, { executable: server });
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
      console.error(redisHowTo(env.REDIS_URL));
      process.exit(1);
    }
  } else {
    group.print('redis', `using ${env.REDIS_URL} (prefix ${env.REDIS_PREFIX})`);
  }
  // The simulator starts afresh each time, so the demo's runs do too (only under its own default
  // prefix: a prefix you chose is left alone).
  if (!process.env.REDIS_PREFIX) {
    const cleared = await clearPrefix(env.REDIS_URL, env.REDIS_PREFIX);
    if (cleared > 0) group.print('redis', `cleared ${cleared} keys left by an earlier demo under ${env.REDIS_PREFIX}:`);
  }

  // 2. What an administrator would put on the agent host: the new PFX files (a fresh password each
  // run) in the agent's CERT_DIR; and where the Graph simulator writes the CA the agent trusts.
  const demoDir = resolve(repoRoot, '.demo');
  const tlsDir = resolve(demoDir, 'tls');
  rmSync(tlsDir, { recursive: true, force: true });
  mkdirSync(tlsDir, { recursive: true });
  const certificates = writeDemoCertificates(resolve(demoDir, 'certs'));
  group.print('demo', `wrote ${certificates.good.file} (${certificates.good.thumbprint}) and ${certificates.weak.file} (1024-bit, SHA-1) to ${certificates.dir}: the agent's CERT_DIR`);

  // 3. Simulator, bot, agent
  const scenario: SimScenario = argv.has('--fresh') ? 'fresh' : 'configured';
  if (scenario === 'fresh') group.print('demo', '--fresh: the simulator starts with an unconfigured deployment (SIM_SCENARIO=fresh) for `@setup run setup`.');
  const childEnv = childEnvironment(env, signingKey, process.env, { certificates, tlsDir }, { scenario });
  const raw = argv.has('--raw-logs');
  const tsx = (entry: string) => ({ command: process.execPath, args: ['--import', 'tsx', entry], env: childEnv, cwd: repoRoot, ...(raw ? {} : { formatLine: (l: string) => formatPinoLine(l) }) });
  if (!env.JOB_SIGNING_KEY) group.print('demo', 'JOB_SIGNING_KEY not set: generated one for this run (shared by the bot and the agent).');
  group.start({ name: 'sim', ...tsx('sim/main.ts') });
  group.start({ name: 'bot', ...tsx('bot/main.ts') });
  const orgUrl = `http://127.0.0.1:${env.SIM_PORT}/${env.SIM_ORG}`;
  try {
    await waitForHttp(`${orgUrl}/api/data/v9.0/WhoAmI`, { timeoutMs: 60_000, signal: stopSignal.signal });
    // The agent reads TLS_CA_FILE at start: wait until the Graph simulator has written it.
    await waitForFile(resolve(tlsDir, GRAPH_SIM_CA_FILE_NAME), { timeoutMs: 30_000, signal: stopSignal.signal });
    group.start({ name: 'agent', ...tsx('agent/main.ts') });
    await waitForHttp(`http://127.0.0.1:${env.PORT}/healthz`, { timeoutMs: 60_000, signal: stopSignal.signal });
  } catch (error) {
    if (exitCode === undefined) {
      group.print('demo', error instanceof Error ? error.message : String(error));
      await shutdown(1, 'a process did not start');
    }
    return;
  }
  if (exitCode !== undefined) return;

  // 4. The Playground (on an internal port) behind the acting-user proxy (on PLAYGROUND_PORT)
  const logDir = resolve(repoRoot, '.playground');
  mkdirSync(logDir, { recursive: true });
  const internalPort = await freePort();
  // Typing as someone else than the requester: a generated config with that person as currentUser.
  let configPath: string | undefined;
  if (typing !== requester) {
    configPath = resolve(logDir, `playground-as-${typing.id}.yml`);
    writeFileSync(configPath, renderPlaygroundYaml(typing));
  }
  const pg = playgroundCommand({
    appEndpoint: `http://localhost:${env.PORT}/api/messages`,
    port: internalPort,
    ...(configPath ? { configPath } : {}),
    logFile: resolve(logDir, 'playground.log'),
  });
  const playground = group.start({ name: 'playground', command: pg.command, args: pg.args, env: pg.env, cwd: repoRoot });
  let listeningPort: number;
  try {
    listeningPort = await waitForListening(playground, 60_000);
  } catch (error) {
    if (exitCode === undefined) await shutdown(1, error instanceof Error ? error.message : String(error));
    return;
  }
  const proxyOptions = {
    target: { host: '127.0.0.1', port: listeningPort },
    users: playgroundUsers.map((u) => ({ id: u.id, name: u.name, note: u.role === 'none' ? 'no rights' : u.role })),
    defaultUserId: typing.id,
    personalChatId: playgroundChats.personalChatId,
  };
  try {
    proxy = await startActingUserProxy({ ...proxyOptions, port: env.PLAYGROUND_PORT });
  } catch (error) {
    group.print('demo', `port ${env.PLAYGROUND_PORT} is taken (${error instanceof Error ? error.message : String(error)}): using a free one; set PLAYGROUND_PORT to choose.`);
    proxy = await startActingUserProxy({ ...proxyOptions, port: 0 });
  }
  console.log(instructions(proxy.url, typing, scenario));
  if (argv.has('--open')) openBrowser(proxy.url);
}

// Run only as the entry point (tests import the helpers above).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
