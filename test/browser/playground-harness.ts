import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Redis } from 'ioredis';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { loadAgentConfig } from '../../agent/runtime/config.ts';
import { startAgent, type RunningAgent } from '../../agent/runtime/start-agent.ts';
import { loadBotConfig } from '../../bot/bot-config.ts';
import { startBot, type RunningBot } from '../../bot/bot-server.ts';
import { silentLogger } from '../../core/logger.ts';
import { connectRedis } from '../../core/redis-connection.ts';
import { startActingUserProxy, type ActingUserProxy } from '../../scripts/acting-user-proxy.ts';
import { freePort } from '../../scripts/demo.ts';
import { parseListeningPort, playgroundCommand, playgroundConfigPath } from '../../scripts/playground.ts';
import { demoAuthorizationEnv, playgroundChats, playgroundUsers, renderPlaygroundYaml, requester, type PlaygroundUser } from '../../scripts/playground-users.ts';
import { startCrmSimulator, type CrmSimulator } from '../../sim/crm-simulator.ts';
import { writeDemoCertificates } from '../../sim/demo-certificates.ts';
import { startGraphSimulator } from '../../sim/graph-simulator.ts';
import { simAgentEnvironment } from '../../sim/sim-agent-env.ts';
import { deletePrefixedKeys } from '../support/delete-prefixed-keys.ts';

/**
 * The real product (CRM simulator, bot, agent, in-process, on a unique Redis prefix) plus the
 * Microsoft 365 Agents Playground (a child process, with the repository's
 * .m365agentsplayground.yml) behind the demo's acting-user proxy, and Debian's Chromium driven
 * by playwright-core.
 */
export const CHROMIUM = '/usr/bin/chromium';
export const REDIS_URL = 'redis://127.0.0.1:6379';
const SIGNING_KEY = `browser-test-${randomUUID()}-${randomUUID()}`;

export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function assertChromiumInstalled(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}, and the Agents Playground test needs it. ` +
        'Run `bash .ci/run` (it installs Debian\'s chromium, then runs the tests) or `sudo apt-get install -y chromium`.',
    );
  }
}

export interface PlaygroundStack {
  prefix: string;
  redis: Redis;
  sim: CrmSimulator;
  bot: RunningBot;
  agent: RunningAgent;
  playground: ChildProcess;
  playgroundOutput: string[];
  proxy: ActingUserProxy;
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

function waitForPlayground(child: ChildProcess, output: string[], timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Agents Playground did not start in ${timeoutMs} ms:\n${output.join('\n')}`)), timeoutMs);
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        const port = parseListeningPort(line);
        if (port !== undefined) {
          clearTimeout(timer);
          resolve(port);
        }
      });
    }
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Agents Playground exited (${code}):\n${output.join('\n')}`));
    });
  });
}

export interface PlaygroundStackOptions {
  /** Who the Playground types as (default the requester, an operator). */
  typing?: PlaygroundUser;
  /** The S2S side too (Graph simulator, PowerShell stand-in, PFX files), with the current certificate this many days from expiry. */
  certDaysLeft?: number;
  /** `fresh`: an unconfigured deployment (the runbook's), with the S2S side (Graph simulator, PowerShell stand-in, PFX files). */
  scenario?: 'configured' | 'fresh';
}

export async function startPlaygroundStack(options: PlaygroundStackOptions = {}): Promise<PlaygroundStack> {
  const typing = options.typing ?? requester;
  assertChromiumInstalled();
  const prefix = `pw-${randomUUID()}`;
  const work = mkdtempSync(join(tmpdir(), 'setup-playground-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(work, { recursive: true, force: true })];
  const close = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch {
        // keep closing the rest
      }
    }
  };
  try {
    const redis = await connectRedis(REDIS_URL);
    cleanups.push(async () => {
      await deletePrefixedKeys(redis, prefix);
      await redis.quit();
    });

    const sim = await startCrmSimulator({
      port: 0,
      seed: 20_240_601,
      mailboxCount: 120,
      testDelayMs: 300,
      ...(options.certDaysLeft === undefined ? {} : { certDaysLeft: options.certDaysLeft }),
      ...(options.scenario === undefined ? {} : { scenario: options.scenario }),
    });
    cleanups.push(() => sim.close());

    // The certificate side, configured as the demo does (sim/sim-agent-env.ts).
    let certEnv: Record<string, string> = {};
    if (options.certDaysLeft !== undefined || options.scenario === 'fresh') {
      const graph = await startGraphSimulator({ s2s: sim.s2s });
      cleanups.push(() => graph.close());
      const certificates = writeDemoCertificates(join(work, 'certs'));
      certEnv = simAgentEnvironment({ crmBaseUrl: sim.baseUrl, graph, certDir: certificates.dir, pfxPassword: certificates.password });
    }

    const bot = await startBot(
      loadBotConfig({
        PORT: '0',
        REDIS_URL,
        REDIS_PREFIX: prefix,
        JOB_SIGNING_KEY: SIGNING_KEY,
        ...demoAuthorizationEnv(),
        CARD_UPDATE_INTERVAL_MS: '200',
        LOG_LEVEL: 'silent',
      }),
      { redis, logger: silentLogger(), host: '127.0.0.1' },
    );
    cleanups.push(() => bot.close());

    const agent = await startAgent(
      loadAgentConfig({
        REDIS_URL,
        REDIS_PREFIX: prefix,
        JOB_SIGNING_KEY: SIGNING_KEY,
        CRM_URL: sim.orgUrl,
        CRM_AUTH: 'none',
        PROGRESS_INTERVAL_MS: '200',
        TEST_POLL_INTERVAL_MS: '300',
        HEARTBEAT_INTERVAL_MS: '1000',
        LOG_LEVEL: 'silent',
        ...certEnv,
      }),
      { redis, logger: silentLogger(), closeTimeoutMs: 2000, ...(certEnv['PWSH_SIM_URL'] ? { powershellEnv: { ...process.env, PWSH_SIM_URL: certEnv['PWSH_SIM_URL'] } } : {}) },
    );
    cleanups.push(() => agent.close());

    // The committed config types as the requester; anyone else gets a generated one (as `npm start -- --as`).
    let configPath = playgroundConfigPath;
    if (typing !== requester) {
      configPath = join(work, 'playground.yml');
      writeFileSync(configPath, renderPlaygroundYaml(typing));
    }
    const pg = playgroundCommand({
      appEndpoint: `${bot.url}/api/messages`,
      port: await freePort(),
      configPath,
      logFile: join(work, 'playground.log'),
    });
    const playground = spawn(pg.command, pg.args, { env: pg.env, cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          if (playground.exitCode !== null || playground.signalCode !== null) return resolve();
          playground.once('exit', () => resolve());
          playground.kill('SIGTERM');
          setTimeout(() => playground.kill('SIGKILL'), 3000).unref();
        }),
    );
    const playgroundOutput: string[] = [];
    const playgroundPort = await waitForPlayground(playground, playgroundOutput, 30_000);

    const proxy = await startActingUserProxy({
      target: { host: '127.0.0.1', port: playgroundPort },
      port: 0,
      users: playgroundUsers.map((u) => ({ id: u.id, name: u.name, note: u.role })),
      defaultUserId: typing.id,
      personalChatId: playgroundChats.personalChatId,
    });
    cleanups.push(() => proxy.close());

    const context = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: chromiumArgs,
      viewport: { width: 1400, height: 1000 },
    });
    cleanups.push(() => context.close());
    const page = context.pages()[0] ?? (await context.newPage());
    return { prefix, redis, sim, bot, agent, playground, playgroundOutput, proxy, context, page, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Opens a conversation in the Playground's left rail by its accessible name. */
export async function openConversation(page: Page, name: string): Promise<void> {
  await page.getByRole('treeitem', { name }).click();
}

/**
 * Types a message in the compose box (a Lexical editor). With `mention`, it starts with an
 * @mention of the bot picked from the Playground's mention list, as a person would.
 */
export async function sendMessage(page: Page, text: string, options: { mention?: string } = {}): Promise<void> {
  const box = page.locator('[data-lexical-editor="true"][role="textbox"]').first();
  await box.click();
  if (options.mention) {
    await page.keyboard.type(`@${options.mention.slice(0, -1)}`);
    await page.getByRole('menuitem', { name: options.mention }).click();
    await page.keyboard.type(' ');
  }
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/** Picks who the page acts as (the demo's "Acting as" selector). */
export async function actAs(page: Page, userId: string): Promise<void> {
  await page.selectOption('#setup-acting-user', userId);
}
