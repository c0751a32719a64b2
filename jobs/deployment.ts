import { z } from 'zod';
import { redisKeys } from './redis-keys.ts';

/** A CRM deployment's name as used in queue names: short, lower-case, no separators Redis or BullMQ dislike. */
export const deploymentSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'use 1-40 lower-case letters, digits or dashes, starting with a letter or digit');

/** The queue the bot fills and the deployment's agents drain. */
export function jobQueueName(deployment: string): string {
  return `setup-jobs-${deploymentSchema.parse(deployment)}`;
}

/** The queue the agents fill with progress and results and the bot instances drain. */
export function reportQueueName(deployment: string): string {
  return `setup-reports-${deploymentSchema.parse(deployment)}`;
}

/** Redis key (under the configured prefix) where the deployment's agents leave a heartbeat. */
export function agentHeartbeatKey(prefix: string, deployment: string): string {
  return redisKeys.agentHeartbeat(prefix, deploymentSchema.parse(deployment));
}

/**
 * The bot's own queue of run timers (plan timeout, approval expiry, start timeout). Only bot
 * instances use it; it is named here with the other queues so everything under the prefix is in
 * one place.
 */
export function timerQueueName(deployment: string): string {
  return `setup-timers-${deploymentSchema.parse(deployment)}`;
}
