import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../../core/logger.ts';
import { toSetupError } from '../../core/setup-error.ts';
import type { CertStatusResult } from '../../jobs/cert-types.ts';
import { deploymentSchema, timerQueueName } from '../../jobs/deployment.ts';
import { newRunId } from '../../jobs/job-options.ts';
import { runIdSchema, type JobPayload } from '../../jobs/job-types.ts';
import type { CardActionReply } from '../inbound/card-actions/card-action-router.ts';
import type { BotConfig } from '../bot-config.ts';
import type { ActivityRequest, BotServices } from '../bot-services.ts';
import type { AdaptiveCardJson } from '../cards/common/card-kit.ts';
import { startCertRotation } from '../inbound/commands/cert-rotate-command.ts';
import { certExpiredCard, certNotRegisteredCard, certWatchCannotCheckCard, rotationDueCard } from '../cards/cert/cert-watch-card.ts';
import { conversationRefSchema, type ConversationRef, type Person, type Run, type RunError } from '../runs/run-model.ts';
import type { RunKind } from '../runs/run-kinds.ts';
import { jobTimeoutAt, scheduleTimer } from '../runs/run-timers.ts';
import { describeError } from '../user-facing-error.ts';
import { redisKeys } from '../../jobs/redis-keys.ts';

/**
 * The certificate expiry watch (bot side). A BullMQ job scheduler on the bot's timer queue fires a
 * `cert-watch` job on CERT_WATCH_CRON; the TimerWorker calls runCertWatch, which starts a card-less
 * run of kind `cert-watch` and dispatches a signed, read-only `cert-status` job. The relay hands
 * its result to handleCertWatchResult, which posts a rotation-due card into the conversation
 * `cert watch here` stored, once per threshold (CERT_WATCH_THRESHOLDS) and certificate.
 *
 * Redis, under the prefix:
 * - `cert-watch:<deployment>:conversation`: the watch conversation's reference (JSON, zod-checked)
 * - `cert-watch:<deployment>:<thumbprint>:<days>`: threshold `days` announced for that certificate
 *   (SET NX, kept ~400 days: longer than any certificate's last 30 days)
 * - `cert-watch:<deployment>:<thumbprint|none>:<expired|none>:<yyyy-mm-dd>`: the daily expired /
 *   not-registered card was posted that day (UTC)
 * - `cert-watch:<deployment>:failures`: failed checks in a row (no agent answered, the agent failed
 *   the check, or CRM's registration could not be read); a check that reads it resets it
 * - `cert-watch:<deployment>:cannot-check:<yyyy-mm-dd>`: the "cannot check" card was posted that day
 */

/** The one job scheduler id of the watch: every bot instance upserts the same one. */
export const CERT_WATCH_SCHEDULER_ID = 'cert-watch';
/** The name of the jobs the scheduler produces on the timer queue (the TimerWorker dispatches on it). */
export const CERT_WATCH_JOB_NAME = 'cert-watch';

/** The run kind of a watch check. */
const CERT_WATCH_KIND: RunKind = 'cert-watch';

/** Who a watch run is requested by: no person, the schedule. */
export const certWatchRequester: Person = { aadObjectId: '', name: 'certificate watch' };
/**
 * The signed job needs an Entra object id for `requestedBy`; a watch check has no person behind it,
 * so it carries the nil GUID (never an operator's or approver's id).
 */
export const CERT_WATCH_REQUESTED_BY = '00000000-0000-0000-0000-000000000000';

/** How long a "threshold announced" mark is kept: longer than a certificate spends under 30 days. */
export const THRESHOLD_MARK_TTL_SECONDS = 400 * 24 * 3600;
/** How long a "posted today" mark is kept (a day, plus slack for clocks). */
export const DAILY_MARK_TTL_SECONDS = 2 * 24 * 3600;

export function certWatchConversationKey(prefix: string, deployment: string): string {
  return redisKeys.certWatchConversation(prefix, deploymentSchema.parse(deployment));
}

export function certWatchThresholdKey(prefix: string, deployment: string, thumbprint: string, days: number): string {
  return redisKeys.certWatchThreshold(prefix, deploymentSchema.parse(deployment), thumbprint, days);
}

export function certWatchDailyKey(prefix: string, deployment: string, what: 'expired' | 'none', thumbprint: string | null, day: string): string {
  return redisKeys.certWatchDaily(prefix, deploymentSchema.parse(deployment), thumbprint, what, day);
}

/** After this many failed checks in a row the watch says it cannot check (once a day). */
export const CERT_WATCH_FAILURES_BEFORE_ALERT = 3;

export function certWatchFailuresKey(prefix: string, deployment: string): string {
  return redisKeys.certWatchFailures(prefix, deploymentSchema.parse(deployment));
}

export function certWatchCannotCheckKey(prefix: string, deployment: string, day: string): string {
  return redisKeys.certWatchCannotCheck(prefix, deploymentSchema.parse(deployment), day);
}

/** Stores the conversation the rotation-due cards go to (one per deployment; the last `cert watch here` wins). */
export async function storeCertWatchConversation(services: Pick<BotServices, 'redis' | 'config'>, reference: ConversationRef): Promise<void> {
  const ref = conversationRefSchema.parse(reference);
  await services.redis.set(certWatchConversationKey(services.config.redisPrefix, services.config.deployment), JSON.stringify(ref));
}

/** The stored watch conversation, or undefined when none is stored (or what is stored is not valid: logged). */
export async function readCertWatchConversation(services: Pick<BotServices, 'redis' | 'config'>, log: Pick<Logger, 'warn'>): Promise<ConversationRef | undefined> {
  const raw = await services.redis.get(certWatchConversationKey(services.config.redisPrefix, services.config.deployment));
  if (raw === null) return undefined;
  try {
    return conversationRefSchema.parse(JSON.parse(raw));
  } catch {
    log.warn('the stored certificate watch conversation is not valid: ignored (run `cert watch here` again)');
    return undefined;
  }
}

export interface EnsureCertWatchSchedulerOptions {
  /** The bot's timer queue (timerQueueName(deployment)). */
  queue: Queue;
  /** CERT_WATCH_CRON, evaluated in UTC. */
  cron: string;
  log: Pick<Logger, 'info'>;
}

/**
 * Creates or updates the watch's job scheduler. Idempotent: every bot instance calls it at start
 * with the same id, so there is one scheduler, with the pattern of the last instance started.
 */
export async function ensureCertWatchScheduler(options: EnsureCertWatchSchedulerOptions): Promise<void> {
  await options.queue.upsertJobScheduler(
    CERT_WATCH_SCHEDULER_ID,
    { pattern: options.cron, tz: 'UTC' },
    {
      name: CERT_WATCH_JOB_NAME,
      data: {},
      opts: {
        attempts: 3,
        backoff: { type: 'exponential', delay: 30_000 },
        removeOnComplete: { age: 7 * 24 * 3600, count: 100 },
        removeOnFail: { age: 30 * 24 * 3600, count: 100 },
      },
    },
  );
  options.log.info({ cron: options.cron }, 'certificate watch scheduled (UTC)');
}

/**
 * At bot start: the watch's scheduler on the bot's timer queue (setup-timers-<deployment>), with
 * CERT_WATCH_CRON. `connection` stays open (the caller owns it).
 */
export async function startCertWatchSchedule(config: Pick<BotConfig, 'deployment' | 'redisPrefix' | 'certWatchCron'>, connection: Redis, log: Pick<Logger, 'info'>): Promise<void> {
  const queue = new Queue(timerQueueName(config.deployment), { connection, prefix: config.redisPrefix });
  try {
    await ensureCertWatchScheduler({ queue, cron: config.certWatchCron, log });
  } finally {
    await queue.close();
  }
}

/**
 * One watch check: a `cert-watch` run (no card of its own) in the stored conversation, its
 * plan-timeout timer, then the signed `cert-status` job. No stored conversation: nothing to do.
 * Throws when the run cannot start (the scheduler's job is retried); the run is then failed.
 */
export async function runCertWatch(services: BotServices, log: Logger): Promise<void> {
  const { runs, jobs, timers, config, now } = services;
  const conversation = await readCertWatchConversation(services, log);
  if (!conversation) {
    log.info('certificate watch: no conversation is set (`@setup cert watch here`), nothing checked');
    return;
  }
  const run = await runs.create({
    runId: newRunId(),
    deployment: config.deployment,
    kind: CERT_WATCH_KIND,
    state: 'running',
    requester: certWatchRequester,
    conversation,
  });
  const runLog = log.child({ runId: run.runId });
  const job: JobPayload = { type: 'cert-status', runId: run.runId, deployment: run.deployment, requestedBy: CERT_WATCH_REQUESTED_BY };
  try {
    // The timer first (see start-run.ts): a job without it could leave the run running forever.
    await scheduleTimer(timers, runLog, run.runId, 'plan-timeout', jobTimeoutAt(job.type, now()));
    const { jobId } = await jobs.dispatch(job);
    runLog.info({ jobId }, 'certificate watch: status job enqueued');
  } catch (error) {
    runLog.error({ err: error }, 'certificate watch: could not start the check');
    const runError: RunError = { code: toSetupError(error).code, message: describeError(error) };
    await runs.transition(run.runId, ['running'], 'failed', { error: runError }).catch((e: unknown) => {
      runLog.warn({ err: e }, 'could not record the failure on the run');
    });
    await recordCertWatchFailure(services, run, runError, runLog);
    throw error;
  }
}

/** What a status result calls for. */
export type CertWatchAlert =
  | { kind: 'none' }
  | { kind: 'not-registered' }
  | { kind: 'expired'; daysLeft: number }
  /** `announce`: the lowest threshold crossed; `crossed`: every threshold crossed (each marked). */
  | { kind: 'due'; daysLeft: number; announce: number; crossed: number[] };

/** Whole days left of the registered certificate (the agent's `daysLeft`, else from notAfter). */
export function certDaysLeft(result: CertStatusResult, now: number): number | null {
  if (!result.registered) return null;
  if (result.daysLeft !== null) return result.daysLeft;
  return Math.floor((Date.parse(result.registered.notAfter) - now) / 86_400_000);
}

/** Pure: which card a result calls for, before the once-only marks are checked. */
export function certWatchAlert(result: CertStatusResult, thresholds: readonly number[], now: number): CertWatchAlert {
  const daysLeft = certDaysLeft(result, now);
  if (daysLeft === null) return { kind: 'not-registered' };
  if (daysLeft < 0) return { kind: 'expired', daysLeft };
  const crossed = [...new Set(thresholds)].filter((t) => daysLeft <= t).sort((a, b) => b - a);
  const announce = crossed[crossed.length - 1];
  if (announce === undefined) return { kind: 'none' };
  return { kind: 'due', daysLeft, announce, crossed };
}

/**
 * The watch run's `cert-status` result: posts the rotation-due card when a threshold is crossed for
 * the first time for this certificate (every crossed threshold is marked, the lowest is announced),
 * the expired or not-registered card once a day, nothing when the certificate is far from expiry.
 * A card Teams did not take is unmarked again, so the next check posts it.
 */
export async function handleCertWatchResult(services: BotServices, run: Run, result: CertStatusResult, log: Logger): Promise<void> {
  const { redis, config, now, poster } = services;
  const prefix = config.redisPrefix;
  const deployment = config.deployment;
  if (!result.registrationRead) {
    // `registered: null` means "unknown" here, not "none": no not-registered card; a failed check.
    const finding = result.findings[0];
    log.warn({ runId: run.runId }, 'certificate watch: CRM\'s registered certificate could not be read');
    await recordCertWatchFailure(services, run, {
      code: 'CERT_REGISTRATION_UNREADABLE',
      message: `The agent could not read which certificate CRM has registered as S2S token issuer (Get-CrmCertificate)${finding ? `: ${finding.message}` : '.'}`,
      hint: finding?.fix ?? 'Check the agent can run the CRM PowerShell cmdlets as a CRM deployment administrator (the agent\'s log says why it failed).',
    }, log);
    return;
  }
  await resetCertWatchFailures(services);
  const alert = certWatchAlert(result, config.certWatchThresholds, now());
  const runLog = log.child({ runId: run.runId, alert: alert.kind });
  if (alert.kind === 'none') {
    runLog.info({ daysLeft: result.daysLeft }, 'certificate watch: far from expiry, nothing to post');
    return;
  }

  const thumbprint = result.registered?.thumbprint ?? null;
  let claimKey: string;
  let newlySet: boolean;
  if (alert.kind === 'due') {
    const tx = redis.multi();
    for (const t of alert.crossed) tx.set(certWatchThresholdKey(prefix, deployment, thumbprint ?? 'none', t), run.runId, 'EX', THRESHOLD_MARK_TTL_SECONDS, 'NX');
    const replies = (await tx.exec()) ?? [];
    const index = alert.crossed.indexOf(alert.announce);
    const [error, reply] = replies[index] ?? [null, null];
    if (error) throw error;
    claimKey = certWatchThresholdKey(prefix, deployment, thumbprint ?? 'none', alert.announce);
    newlySet = reply === 'OK';
  } else {
    claimKey = certWatchDailyKey(prefix, deployment, alert.kind === 'expired' ? 'expired' : 'none', thumbprint, utcDay(now()));
    newlySet = (await redis.set(claimKey, run.runId, 'EX', DAILY_MARK_TTL_SECONDS, 'NX')) === 'OK';
  }
  if (!newlySet) {
    runLog.info({ daysLeft: result.daysLeft, thumbprint }, 'certificate watch: already announced, nothing to post');
    return;
  }

  const conversation = (await readCertWatchConversation(services, runLog)) ?? run.conversation;
  const card = alertCard(alert, result, deployment, run.runId);
  if (!card) return;
  const posted = await poster.sendCard(conversation, card);
  if (posted.ok) {
    runLog.info({ daysLeft: result.daysLeft, thumbprint }, 'certificate watch: card posted');
    return;
  }
  runLog.warn({ status: posted.status, permanent: posted.permanent }, 'certificate watch: Teams did not take the card; the next check posts it again');
  await redis.del(claimKey);
  if (posted.permanent) await services.runs.patch(run.runId, { postFailure: `${posted.status ?? ''} ${posted.message}`.trim() });
}

/** A check that read the certificate: the failed-checks counter starts again. */
export async function resetCertWatchFailures(services: Pick<BotServices, 'redis' | 'config'>): Promise<void> {
  await services.redis.del(certWatchFailuresKey(services.config.redisPrefix, services.config.deployment));
}

/**
 * A watch check failed (the agent failed it, no agent answered, it could not start, or CRM's
 * registration could not be read): counts it, and after CERT_WATCH_FAILURES_BEFORE_ALERT failed
 * checks in a row posts the "cannot check" card into the watch conversation, once a day (UTC), with
 * the error, its hint and what to do. Never throws: the watch's own bookkeeping must not hold up the
 * report or timer that brought the failure (a failure here is logged).
 */
export async function recordCertWatchFailure(services: BotServices, run: Run, error: RunError, log: Logger): Promise<void> {
  const { redis, config, now, poster } = services;
  const prefix = config.redisPrefix;
  const runLog = log.child({ runId: run.runId });
  try {
    const key = certWatchFailuresKey(prefix, config.deployment);
    const replies = await redis.multi().incr(key).expire(key, THRESHOLD_MARK_TTL_SECONDS).exec();
    const [incrError, reply] = replies?.[0] ?? [new Error('the failed-checks counter was not counted'), 0];
    if (incrError) throw incrError;
    const count = Number(reply);
    runLog.warn({ failures: count, code: error.code }, 'certificate watch: check failed');
    if (count < CERT_WATCH_FAILURES_BEFORE_ALERT) return;
    const claimKey = certWatchCannotCheckKey(prefix, config.deployment, utcDay(now()));
    if ((await redis.set(claimKey, run.runId, 'EX', DAILY_MARK_TTL_SECONDS, 'NX')) !== 'OK') {
      runLog.info({ failures: count }, 'certificate watch: the cannot-check card was posted today already');
      return;
    }
    const conversation = (await readCertWatchConversation(services, runLog)) ?? run.conversation;
    const posted = await poster.sendCard(conversation, certWatchCannotCheckCard({ deployment: config.deployment, runId: run.runId, failures: count, error }));
    if (posted.ok) {
      runLog.info({ failures: count }, 'certificate watch: the cannot-check card is posted');
      return;
    }
    runLog.warn({ status: posted.status, permanent: posted.permanent }, 'certificate watch: Teams did not take the cannot-check card; the next failed check posts it');
    await redis.del(claimKey);
  } catch (e) {
    runLog.error({ err: e }, 'certificate watch: could not record the failed check');
  }
}

function alertCard(alert: Exclude<CertWatchAlert, { kind: 'none' }>, result: CertStatusResult, deployment: string, runId: string): AdaptiveCardJson | undefined {
  if (alert.kind === 'not-registered' || !result.registered) return certNotRegisteredCard({ deployment, runId });
  if (alert.kind === 'expired') return certExpiredCard({ deployment, runId, cert: result.registered, daysLeft: alert.daysLeft });
  return rotationDueCard({ deployment, runId, cert: result.registered, daysLeft: alert.daysLeft, threshold: alert.announce });
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Card data is client-controlled: only the run id is read from it. */
const runIdData = z.object({ runId: runIdSchema }).passthrough();

/** How long a Start rotation click is remembered per rotation-due card (as long as a run is kept). */
export const START_ROTATION_MARK_TTL_SECONDS = 30 * 24 * 3600;

export function certWatchStartKey(prefix: string, watchRunId: string): string {
  return redisKeys.certWatchStart(prefix, runIdSchema.parse(watchRunId));
}

/**
 * **Start rotation** on a rotation-due card: the clicker must be an operator or approver; then it
 * is as if they typed `cert rotate` (the plan card is posted in the thread). One rotation per card:
 * the click claims `<prefix>:cert-watch-start:<watchRunId>` with the new rotation's run id (SET NX),
 * so a double click or an invoke retry answers with the rotation already started; a rotation that
 * did not start gives the claim back. The watch run id is only used for that claim and the log.
 */
export async function handleStartRotationClick(req: ActivityRequest, data: unknown): Promise<CardActionReply> {
  const parsed = runIdData.safeParse(data);
  if (!parsed.success) {
    req.log.warn('start rotation without a valid run id');
    return 'This card is not valid. Type `@setup cert rotate` instead.';
  }
  const watchRunId = parsed.data.runId;
  const log = req.log.child({ watchRunId, verb: 'cert.start-rotation' });
  const decision = req.services.authorizer.canRunCommands(req.from.aadObjectId);
  if (!decision.allowed) {
    log.info({ reason: decision.reason }, 'start rotation refused');
    return decision.reason;
  }
  const { redis, config } = req.services;
  const claimKey = certWatchStartKey(config.redisPrefix, watchRunId);
  const rotationRunId = newRunId();
  let run: Run | undefined;
  try {
    if ((await redis.set(claimKey, rotationRunId, 'EX', START_ROTATION_MARK_TTL_SECONDS, 'NX')) !== 'OK') {
      const started = await redis.get(claimKey);
      log.info({ rotationRunId: started }, 'start rotation: a rotation was already started from this card');
      return `A rotation was already started from this card: run ${started ?? 'unknown'}. Its plan card is in this conversation; type \`@setup cert rotate\` for a new plan.`;
    }
    // As if the clicker typed `cert rotate`: the planning card goes into this conversation.
    run = await startCertRotation({ ...req, log }, undefined, { runId: rotationRunId });
  } catch (error) {
    log.error({ err: error }, 'start rotation failed');
    await releaseStartClaim(req, claimKey, rotationRunId, log);
    return describeError(error);
  }
  if (!run) {
    await releaseStartClaim(req, claimKey, rotationRunId, log);
    return 'The rotation did not start: the card in this conversation says why.';
  }
  log.info({ rotationRunId: run.runId }, 'rotation started from the rotation-due card');
  return 'Rotation requested: the plan card follows in this conversation.';
}

/** A rotation that did not start gives the card's claim back (only its own), so the next click tries again. */
async function releaseStartClaim(req: ActivityRequest, claimKey: string, rotationRunId: string, log: Logger): Promise<void> {
  try {
    if ((await req.services.redis.get(claimKey)) === rotationRunId) await req.services.redis.del(claimKey);
  } catch (error) {
    log.warn({ err: error }, 'could not release the start rotation claim');
  }
}
