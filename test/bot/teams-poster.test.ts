import type { CloudAdapter, TurnContext } from 'botbuilder';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { card, text } from '../../bot/cards/common/card-kit.ts';
import { ConnectorHttpError } from '../../bot/connector-http-client.ts';
import type { ConversationRef } from '../../bot/runs/run-model.ts';
import { TeamsPoster, retryAfterMs } from '../../bot/teams-poster.ts';

const ref: ConversationRef = { channelId: 'msteams', serviceUrl: 'http://127.0.0.1:1/', conversation: { id: 'c' }, bot: { id: 'b' } };

/** An adapter whose updateActivity answers from a script of statuses (200 = ok). */
function scriptedAdapter(statuses: { status: number; retryAfter?: string }[]) {
  const calls: unknown[] = [];
  const adapter = {
    continueConversationAsync: async (_appId: string, _ref: unknown, logic: (ctx: TurnContext) => Promise<void>) => {
      const ctx = {
        updateActivity: (activity: unknown) => {
          calls.push(activity);
          const next = statuses.shift() ?? { status: 200 };
          if (next.status === 200) return Promise.resolve();
          const headers: Record<string, string> = next.retryAfter ? { 'retry-after': next.retryAfter } : {};
          return Promise.reject(new ConnectorHttpError('PUT', 'http://x/', next.status, headers));
        },
      } as unknown as TurnContext;
      // Like CloudAdapter with onTurnError set: errors in the logic are swallowed.
      try {
        await logic(ctx);
      } catch {
        /* swallowed by onTurnError */
      }
    },
  } as unknown as CloudAdapter;
  return { adapter, calls };
}

function poster(statuses: { status: number; retryAfter?: string }[]) {
  const { adapter, calls } = scriptedAdapter(statuses);
  const sleeps: number[] = [];
  const p = new TeamsPoster({
    adapter,
    appId: '',
    logger: silentLogger(),
    now: () => 0,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    policy: { maxAttempts: 4, maxDelayMs: 10_000, baseDelayMs: 100 },
  });
  return { p, calls, sleeps };
}

const c = card([text('x')]);

describe('TeamsPoster', () => {
  it('retries 429 after Retry-After, 412 and 5xx with backoff', async () => {
    const { p, calls, sleeps } = poster([{ status: 429, retryAfter: '2' }, { status: 412 }, { status: 503 }]);
    const out = await p.updateCard(ref, 'm1', c);
    expect(out).toEqual({ ok: true, id: 'm1' });
    expect(calls).toHaveLength(4);
    expect(sleeps).toEqual([2000, 200, 400]);
    expect(calls[0]).toMatchObject({ id: 'm1', type: 'message', attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive' }] });
    expect((calls[0] as { text?: string }).text).toBeUndefined();
  });

  it.each([403, 404, 413])('treats %i as permanent', async (status) => {
    const { p, calls, sleeps } = poster([{ status }]);
    const out = await p.updateCard(ref, 'm1', c);
    expect(out).toMatchObject({ ok: false, permanent: true, status });
    expect(calls).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('gives up after the bounded attempts', async () => {
    const { p, calls } = poster([{ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }]);
    const out = await p.updateCard(ref, 'm1', c);
    expect(out).toMatchObject({ ok: false, permanent: false, status: 500 });
    expect(calls).toHaveLength(4);
  });

  it('gives up when Retry-After is longer than allowed', async () => {
    const { p, calls } = poster([{ status: 429, retryAfter: '3600' }]);
    const out = await p.updateCard(ref, 'm1', c);
    expect(out).toMatchObject({ ok: false, permanent: false, status: 429 });
    expect(calls).toHaveLength(1);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(retryAfterMs(new ConnectorHttpError('PUT', 'u', 429, { 'retry-after': '1.5' }), 0)).toBe(1500);
    expect(retryAfterMs(new ConnectorHttpError('PUT', 'u', 429, { 'retry-after': new Date(10_000).toUTCString() }), 4_000)).toBe(6_000);
    expect(retryAfterMs(new ConnectorHttpError('PUT', 'u', 429, {}), 0)).toBeUndefined();
  });
});
