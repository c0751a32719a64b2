import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createLogger, silentLogger, type Logger } from '../../core/logger.ts';
import { loadAgentConfig } from '../../agent/runtime/config.ts';
import { startAgent, type RunningAgent } from '../../agent/runtime/start-agent.ts';
import { loadBotConfig } from '../../bot/bot-config.ts';
import { startBot, type RunningBot } from '../../bot/bot-server.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCrmSimulator, type CrmSimulator, type CrmSimulatorOptions } from '../../sim/crm-simulator.ts';
import { writeDemoCertificates, type DemoCertificates } from '../../sim/demo-certificates.ts';
import { startGraphSimulator, type GraphSimulator } from '../../sim/graph-simulator.ts';
import { simAgentEnvironment } from '../../sim/sim-agent-env.ts';
import { invokeActivity, messageActivity, post } from './bot-harness.ts';
import { startFakeConnector, cardOf, cardText, type CapturedCall, type FakeConnector } from './fake-connector.ts';
import { deletePrefixedKeys } from './delete-prefixed-keys.ts';
import { agentHeartbeatKey } from '../../jobs/deployment.ts';

/**
 * The whole product in one process, as the tests and the benchmark need it: the CRM simulator, the
 * real agent (reaching the simulator through CRM_URL), one or more real bots, and a local Bot
 * Framework connector capturing what the bot posts. Real Redis with a unique key prefix.
 */
export const STACK_SIGNING_KEY = 'full-stack-signing-key-0123456789abcdef';
export const OPERATOR = { id: '29:operator', aadObjectId: 'aaaaaaaa-0000-0000-0000-000000000001', name: 'Olivia Operator' };
export const APPROVER = { id: '29:approver', aadObjectId: 'aaaaaaaa-0000-0000-0000-000000000002', name: 'Adam Approver' };
export const STRANGER = { id: '29:stranger', aadObjectId: 'aaaaaaaa-0000-0000-0000-000000000003', name: 'Uma Unauthorised' };
export type StackUser = typeof OPERATOR;

export interface FullStackOptions {
  sim?: CrmSimulatorOptions;
  agentEnv?: Record<string, string>;
  botEnv?: Record<string, string>;
  bots?: number;
  logLevel?: string;
  /** Also the S2S side: the Graph simulator, the PowerShell stand-in and PFX files in a CERT_DIR. */
  certs?: boolean;
  /**
   * Run the agent as a child process (`node --import tsx agent/main.ts`, the same entry point as
   * `npm run agent`) instead of in this process, so a test can kill it (SIGKILL, no clean-up) and
   * start another one.
   */
  agentProcess?: boolean;
}

export interface FullStack {
  prefix: string;
  redis: Redis;
  sim: CrmSimulator;
  /** The in-process agent (undefined with `agentProcess`). */
  agent: RunningAgent | undefined;
  bots: RunningBot[];
  connector: FakeConnector;
  conversationId: string;
  /** With `certs`: the Graph simulator and the PFX files the agent may read. */
  graph: GraphSimulator | undefined;
  certificates: DemoCertificates | undefined;
  /** Sends a channel message that @mentions the bot; returns the bot's reply. */
  say(from: StackUser, text: string): Promise<CapturedCall>;
  /** Clicks a card button (with the card's input values in `inputs`); returns the invoke's response body. */
  click(from: StackUser, verb: string, runId: string, cardId: string, inputs?: Record<string, string>): Promise<{ status: number; body: unknown }>;
  /** Waits until an update of `cardId` satisfies `predicate`; returns its card text. */
  waitForCard(cardId: string, predicate: (text: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** With `agentProcess`: kills the agent process with SIGKILL (as a crash or a pulled plug would) and waits for it to exit. */
  killAgent(): Promise<void>;
  /** With `agentProcess`: starts a new agent process and waits for its first heartbeat. */
  startAgentProcess(): Promise<void>;
  close(): Promise<void>;
}

function logger(name: string, level: string | undefined): Logger {
  return level ? createLogger({ name, level }) : silentLogger();
}

export async function startFullStack(options: FullStackOptions = {}): Promise<FullStack> {
  const prefix = `t-${randomUUID()}`;
  const level = options.logLevel ?? process.env['TEST_LOG'];
  const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const sim = await startCrmSimulator({ testDelayMs: 100, ...options.sim });
  const connector = await startFakeConnector();
  const graph = options.certs ? await startGraphSimulator({ s2s: sim.s2s }) : undefined;
  const certificates = options.certs ? writeDemoCertificates(mkdtempSync(join(tmpdir(), 'stack-certs-'))) : undefined;
  const certEnv = graph && certificates
    ? simAgentEnvironment({ crmBaseUrl: sim.baseUrl, graph, certDir: certificates.dir, pfxPassword: certificates.password })
    : {};
  const common = { REDIS_PREFIX: prefix, DEPLOYMENT: 'contoso', JOB_SIGNING_KEY: STACK_SIGNING_KEY, LOG_LEVEL: 'silent' };
  const agentEnv: Record<string, string> = {
    ...common,
    CRM_URL: sim.orgUrl,
    CRM_AUTH: 'none',
    TEST_POLL_INTERVAL_MS: '100',
    PROGRESS_INTERVAL_MS: '200',
    HEARTBEAT_INTERVAL_MS: '1000',
    ...certEnv,
    ...options.agentEnv,
  };
  const agent = options.agentProcess
    ? undefined
    : await startAgent(
      loadAgentConfig(agentEnv),
      // The stand-in finds the simulator through the environment the agent gives its children.
      { redis, logger: logger('agent', level), ...(certEnv['PWSH_SIM_URL'] ? { powershellEnv: { ...process.env, PWSH_SIM_URL: certEnv['PWSH_SIM_URL'] } } : {}) },
    );
  let child: ChildProcess | undefined;
  const heartbeat = agentHeartbeatKey(prefix, common.DEPLOYMENT);
  const startAgentProcess = async (): Promise<void> => {
    if (!options.agentProcess) throw new Error('startAgentProcess needs the agentProcess option');
    await redis.del(heartbeat);
    const proc = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts'], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, ...agentEnv, ...(level ? { LOG_LEVEL: level } : {}) },
      stdio: ['ignore', level ? 'inherit' : 'ignore', 'inherit'],
    });
    child = proc;
    const deadline = Date.now() + 30_000;
    while ((await redis.exists(heartbeat)) === 0) {
      if (proc.exitCode !== null) throw new Error(`the agent process exited with ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error('the agent process sent no heartbeat within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const killAgent = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await exited;
  };
  if (options.agentProcess) await startAgentProcess();
  const botConfig = loadBotConfig({
    ...common,
    PORT: '0',
    SETUP_OPERATORS: OPERATOR.aadObjectId,
    SETUP_APPROVERS: APPROVER.aadObjectId,
    CARD_UPDATE_INTERVAL_MS: '200',
    ...options.botEnv,
  });
  const bots: RunningBot[] = [];
  for (let i = 0; i < (options.bots ?? 1); i++) {
    bots.push(await startBot(botConfig, { redis, logger: logger(`bot-${i}`, level), host: '127.0.0.1' }));
  }
  const conversationId = `19:${randomUUID()}@thread.tacv2;messageid=1700000000000`;
  const target = { connector, conversationId };
  // Activities go to the bot instances in turn, as a load balancer would send them.
  let next = 0;
  const postActivity = (activity: Record<string, unknown>) => post(bots[next++ % bots.length]!, activity);

  return {
    prefix,
    redis,
    sim,
    agent,
    bots,
    connector,
    conversationId,
    graph,
    certificates,
    async say(from, text) {
      const message = messageActivity(target, from, text);
      const res = await postActivity(message);
      if (res.status !== 200) throw new Error(`the bot answered ${res.status}`);
      // The reply to this message, not another run's card posted meanwhile.
      const replyOf = () => connector.posts().find((p) => p.replyToId === message['id']);
      await connector.waitFor(() => replyOf() !== undefined, `the reply to "${text}"`);
      const reply = replyOf();
      if (!reply) throw new Error('no reply');
      return reply;
    },
    async click(from, verb, runId, cardId, inputs = {}) {
      return postActivity(invokeActivity(target, from, verb, { ...inputs, runId }, cardId));
    },
    async waitForCard(cardId, predicate, what, timeoutMs = 20_000) {
      let found = '';
      await connector.waitFor(
        () => {
          const updates = connector.updates(cardId);
          const last = updates[updates.length - 1];
          if (!last) return false;
          found = cardText(cardOf(last));
          return predicate(found);
        },
        what,
        timeoutMs,
      );
      return found;
    },
    killAgent,
    startAgentProcess,
    async close() {
      for (const bot of bots) await bot.close();
      await agent?.close();
      await killAgent();
      await connector.close();
      await graph?.close();
      await sim.close();
      if (certificates) rmSync(certificates.dir, { recursive: true, force: true });
      await deletePrefixedKeys(redis, prefix);
      await redis.quit();
    },
  };
}
