import type { TurnContext } from 'botbuilder';
import type { Redis } from 'ioredis';
import type { AuditLog } from '../core/audit-log.ts';
import type { Logger } from '../core/logger.ts';
import { agentHeartbeatKey } from '../jobs/deployment.ts';
import type { Authorizer } from './inbound/authorizer.ts';
import type { BotConfig } from './bot-config.ts';
import type { AgentSeen } from './cards/mailboxes/status-card.ts';
import type { JobDispatcher } from './outbound/job-dispatcher.ts';
import type { Person, Run } from './runs/run-model.ts';
import type { RunStore } from './runs/run-store.ts';
import type { RunTimerScheduler } from './runs/run-timers.ts';
import type { TeamsPoster } from './teams-poster.ts';

/** What handlers, card actions and the relay need; built once in bot-server.ts. */
export interface BotServices {
  config: Readonly<BotConfig>;
  authorizer: Authorizer;
  runs: RunStore;
  jobs: JobDispatcher;
  /** Run timers (plan timeout, approval expiry, start timeout) on the bot's timer queue. */
  timers: RunTimerScheduler;
  poster: TeamsPoster;
  /** The deployment's audit stream (core/audit-log.ts): commands, clicks, approvals, results. */
  audit: AuditLog;
  redis: Redis;
  now: () => number;
  logger: Logger;
}

/**
 * Loads a run for a click, a report or a timer. Runs are scoped by deployment: a run recorded for
 * another deployment (two deployments sharing a Redis and a prefix, or a forged id) is treated as
 * unknown, and logged.
 */
export async function loadRun(services: Pick<BotServices, 'runs' | 'config'>, runId: string, log: Pick<Logger, 'warn'>): Promise<Run | undefined> {
  const run = await services.runs.get(runId);
  if (run && run.deployment !== services.config.deployment) {
    log.warn({ runId, runDeployment: run.deployment, deployment: services.config.deployment }, 'the run belongs to another deployment: treated as unknown');
    return undefined;
  }
  return run;
}

/** One incoming activity, with its own child logger. */
export interface ActivityRequest {
  ctx: TurnContext;
  from: Person;
  log: Logger;
  services: BotServices;
}

export function personFrom(ctx: TurnContext): Person {
  const from = ctx.activity.from as { aadObjectId?: string; name?: string } | undefined;
  return { aadObjectId: (from?.aadObjectId ?? '').toLowerCase().slice(0, 64), name: (from?.name ?? '').slice(0, 200) };
}

/**
 * Reads the agent's heartbeat. The agent writes the time of its last sign of life (epoch ms, or an
 * ISO date; a JSON object with `at` is accepted too).
 */
export async function readAgentSeen(services: Pick<BotServices, 'redis' | 'config' | 'now'>): Promise<AgentSeen> {
  const raw = await services.redis.get(agentHeartbeatKey(services.config.redisPrefix, services.config.deployment));
  const at = parseHeartbeat(raw);
  if (at === undefined) return { lastSeenSeconds: undefined };
  return { lastSeenSeconds: Math.max(0, Math.round((services.now() - at) / 1000)) };
}

export function parseHeartbeat(raw: string | null): number | undefined {
  if (raw === null || raw.trim() === '') return undefined;
  const text = raw.trim();
  if (/^\d{10,16}$/.test(text)) return Number(text);
  if (text.startsWith('{')) {
    try {
      const obj = JSON.parse(text) as { at?: unknown; ts?: unknown };
      const v = obj.at ?? obj.ts;
      if (typeof v === 'number') return v;
      if (typeof v === 'string') return parseHeartbeat(v);
    } catch {
      return undefined;
    }
    return undefined;
  }
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
