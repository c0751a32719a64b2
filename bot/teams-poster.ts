import { CardFactory, type CloudAdapter, type ConversationReference, type TurnContext } from 'botbuilder';
import type { Logger } from '../core/logger.ts';
import type { AdaptiveCardJson } from './cards/common/card-kit.ts';
import { ConnectorHttpError } from './connector-http-client.ts';
import type { ConversationRef } from './runs/run-model.ts';

/**
 * Proactive posting to Teams: update a card in place, or send a new card into the thread. Retries
 * what Teams says to retry (429 after Retry-After, 412, 5xx, network errors) a bounded number of
 * times; 403 / 404 / 413 and other 4xx are permanent.
 */
export type PostOutcome =
  | { ok: true; id: string | undefined }
  | { ok: false; permanent: boolean; status: number | undefined; message: string };

export interface PostPolicy {
  maxAttempts: number;
  /** Longest single wait; a Retry-After beyond it ends the retries. */
  maxDelayMs: number;
  baseDelayMs: number;
}

export const defaultPostPolicy: PostPolicy = { maxAttempts: 5, maxDelayMs: 30_000, baseDelayMs: 500 };
/** Inside an invoke (answer within ~5 s): one quick retry at most. */
export const invokePostPolicy: PostPolicy = { maxAttempts: 2, maxDelayMs: 1_500, baseDelayMs: 300 };

export interface TeamsPosterOptions {
  adapter: CloudAdapter;
  appId: string;
  logger: Logger;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  policy?: PostPolicy;
}

export class TeamsPoster {
  readonly #adapter: CloudAdapter;
  readonly #appId: string;
  readonly #logger: Logger;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #now: () => number;
  readonly #policy: PostPolicy;

  constructor(options: TeamsPosterOptions) {
    this.#adapter = options.adapter;
    this.#appId = options.appId;
    this.#logger = options.logger;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#now = options.now ?? Date.now;
    this.#policy = options.policy ?? defaultPostPolicy;
  }

  /** Replaces the card in message `activityId` (a single attachment, no text, so Teams keeps it one message). */
  updateCard(ref: ConversationRef, activityId: string, card: AdaptiveCardJson, policy?: PostPolicy): Promise<PostOutcome> {
    return this.#withRetry('update', policy, async () => {
      let id: string | undefined;
      await this.#continue(ref, async (ctx) => {
        await ctx.updateActivity({ id: activityId, type: 'message', attachments: [CardFactory.adaptiveCard(card)] });
        id = activityId;
      });
      return id;
    });
  }

  /** Sends a new card into the conversation (a reply in the thread of the reference's activity). */
  sendCard(ref: ConversationRef, card: AdaptiveCardJson, policy?: PostPolicy): Promise<PostOutcome> {
    return this.#withRetry('send', policy, async () => {
      let id: string | undefined;
      await this.#continue(ref, async (ctx) => {
        const response = await ctx.sendActivity({ type: 'message', attachments: [CardFactory.adaptiveCard(card)] });
        id = response?.id;
      });
      return id;
    });
  }

  /** Within a turn: the same retry rules for a reply sent on the turn's own context. */
  replyCard(ctx: TurnContext, card: AdaptiveCardJson, policy?: PostPolicy): Promise<PostOutcome> {
    return this.#withRetry('reply', policy, async () => {
      const response = await ctx.sendActivity({ type: 'message', attachments: [CardFactory.adaptiveCard(card)] });
      return response?.id;
    });
  }

  async #continue(ref: ConversationRef, logic: (ctx: TurnContext) => Promise<void>): Promise<void> {
    // The stored reference was parsed with zod on load; botbuilder's type only differs in optionality.
    // The adapter hands errors thrown in `logic` to its onTurnError and does not rethrow them:
    // keep the error here so the retry decision sees it.
    let failure: { error: unknown } | undefined;
    await this.#adapter.continueConversationAsync(this.#appId, ref as unknown as Partial<ConversationReference>, async (ctx) => {
      try {
        await logic(ctx);
      } catch (error) {
        failure = { error };
      }
    });
    if (failure) throw failure.error;
  }

  async #withRetry(op: string, policy: PostPolicy | undefined, attempt: () => Promise<string | undefined>): Promise<PostOutcome> {
    const p = policy ?? this.#policy;
    let last: { status: number | undefined; message: string } = { status: undefined, message: 'not attempted' };
    for (let n = 1; n <= p.maxAttempts; n++) {
      try {
        const id = await attempt();
        return { ok: true, id };
      } catch (error: unknown) {
        const status = statusOf(error);
        const message = error instanceof Error ? error.message : String(error);
        last = { status, message };
        if (!isRetryable(status)) {
          this.#logger.warn({ op, status, err: message }, 'Teams refused the post (permanent): not retrying');
          return { ok: false, permanent: true, status, message };
        }
        if (n === p.maxAttempts) break;
        const retryAfter = status === 429 ? retryAfterMs(error, this.#now()) : undefined;
        const delay = retryAfter ?? Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (n - 1));
        if (delay > p.maxDelayMs) {
          this.#logger.warn({ op, status, delay }, 'Teams asked to wait longer than allowed: giving up on this post');
          break;
        }
        this.#logger.info({ op, status, attempt: n, delay }, 'Teams post failed, retrying');
        await this.#sleep(delay);
      }
    }
    this.#logger.warn({ op, status: last.status, err: last.message }, 'Teams post failed after retries');
    return { ok: false, permanent: false, status: last.status, message: last.message };
  }
}

/** 429, 412 (precondition, retry), 5xx and network errors (no status) are worth retrying. */
export function isRetryable(status: number | undefined): boolean {
  if (status === undefined) return true;
  return status === 429 || status === 412 || status === 408 || status >= 500;
}

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { statusCode?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const v of [e.statusCode, e.status, e.response?.status]) {
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
  }
  return undefined;
}

/** Retry-After as seconds or an HTTP date, read from the error's response headers. */
export function retryAfterMs(error: unknown, now: number): number | undefined {
  const value = headerOf(error, 'retry-after');
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function headerOf(error: unknown, name: string): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  if (error instanceof ConnectorHttpError) return error.responseHeaders[name];
  const response = (error as { response?: { headers?: unknown } }).response;
  const headers = response?.headers;
  if (!headers || typeof headers !== 'object') return undefined;
  const h = headers as { get?: (n: string) => unknown } & Record<string, unknown>;
  const got = typeof h.get === 'function' ? h.get(name) : h[name] ?? h[name.toLowerCase()];
  return typeof got === 'string' ? got : typeof got === 'number' ? String(got) : undefined;
}
