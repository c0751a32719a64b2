import { z } from 'zod';
import type { Logger } from '../../../core/logger.ts';
import { runIdSchema } from '../../../jobs/job-types.ts';
import { MAX_FILTER_ADDRESSES, type MailboxFilter } from '../../../jobs/mailbox-filter.ts';
import { loadRun, type ActivityRequest } from '../../bot-services.ts';
import { startRunbookPlan } from '../commands/run-setup-command.ts';
import type { CardActionReply } from '../../runs/run-control.ts';
import type { Run } from '../../runs/run-model.ts';
import { describeError } from '../../user-facing-error.ts';
import { redisKeys } from '../../../jobs/redis-keys.ts';

/**
 * **Sync from this organization only** on a Test & Enable results card whose failures include
 * "configured with another org": as if the clicker typed `sync this org only` for exactly the
 * mailboxes of that group (their addresses when the card's sample holds them all, else the
 * `failed` filter, which the step narrows to the mailboxes whose ACT fails). The plan card follows
 * in the thread and needs an approver. One plan per results card: the click claims
 * `<prefix>:primary-org-start:<runId>` (SET NX), a plan that did not start gives the claim back.
 */
export const ANOTHER_ORGANIZATION_CAUSE = 'another-organization';

/** Card data is client-controlled: only the run id is read from it; the group comes from the stored run. */
const runIdData = z.object({ runId: runIdSchema }).passthrough();

/** How long a click is remembered per results card (as long as a run is kept). */
const START_MARK_TTL_SECONDS = 30 * 24 * 3600;
/** How long the claim holds before the plan has started. */
const STARTING_MARK_TTL_SECONDS = 5 * 60;

export function primaryOrgStartKey(prefix: string, runId: string): string {
  return redisKeys.primaryOrgStart(prefix, runIdSchema.parse(runId));
}

/** The mailboxes of a finished test run's "another organization" group, as a filter (undefined: the run has none). */
export function anotherOrganizationFilter(run: Run): MailboxFilter | undefined {
  if (run.result?.type !== 'test') return undefined;
  const group = run.result.failures.find((g) => g.cause === ANOTHER_ORGANIZATION_CAUSE);
  if (!group || group.count === 0) return undefined;
  const addresses = [...new Set(group.sample)];
  return group.count <= addresses.length && addresses.length <= MAX_FILTER_ADDRESSES ? { kind: 'addresses', addresses } : { kind: 'failed' };
}

export async function handlePrimaryOrgClick(req: ActivityRequest, data: unknown): Promise<CardActionReply> {
  const parsed = runIdData.safeParse(data);
  if (!parsed.success) {
    req.log.warn('sync from this organization only without a valid run id');
    return 'This card is not valid. Type `@setup sync this org only` instead.';
  }
  const runId = parsed.data.runId;
  const log = req.log.child({ runId, verb: 'mailboxes.primary-org' });
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) {
    log.info({ reason: decision.reason }, 'sync from this organization only refused');
    return decision.reason;
  }
  const run = await loadRun(req.services, runId, log);
  const filter = run ? anotherOrganizationFilter(run) : undefined;
  if (!filter) return 'This results card has no mailboxes whose appointments, contacts and tasks another organization holds.';
  const { redis, config } = req.services;
  const claimKey = primaryOrgStartKey(config.redisPrefix, runId);
  const planRunId = await claim(req, claimKey, log);
  if (planRunId === undefined) return 'Nothing was started: try again in a moment.';
  if (typeof planRunId === 'object') return `A plan was already asked for from this card: run ${planRunId.existing}. Its plan card is in this conversation.`;
  let plan: Run | undefined;
  try {
    plan = await startRunbookPlan({ ...req, log }, 'primary-org', { dryRun: false, filter });
  } catch (error) {
    log.error({ err: error }, 'sync from this organization only failed');
    await redis.del(claimKey);
    return describeError(error);
  }
  if (!plan) {
    await redis.del(claimKey);
    return 'The plan did not start: the card in this conversation says why.';
  }
  await redis.set(claimKey, plan.runId, 'EX', START_MARK_TTL_SECONDS);
  log.info({ planRunId: plan.runId }, 'sync from this organization only: plan asked for from the results card');
  return 'Plan requested: the plan card follows in this conversation; an approver confirms it.';
}

/** Claims the card for this click: a marker value, `{ existing }` when a plan was already asked for, undefined when Redis did not answer. */
async function claim(req: ActivityRequest, key: string, log: Logger): Promise<string | { existing: string } | undefined> {
  try {
    // Short while the plan starts (a bot that dies meanwhile frees the card soon); the plan's run id then holds it for as long as a run is kept.
    if ((await req.services.redis.set(key, 'starting', 'EX', STARTING_MARK_TTL_SECONDS, 'NX')) === 'OK') return 'starting';
    return { existing: (await req.services.redis.get(key)) ?? 'unknown' };
  } catch (error) {
    log.error({ err: error }, 'sync from this organization only: the claim could not be made');
    return undefined;
  }
}
