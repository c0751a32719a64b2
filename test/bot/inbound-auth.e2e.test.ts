import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unauthorizedMessage } from '../../bot/bot-adapter.ts';
import { startBot, type RunningBot } from '../../bot/bot-server.ts';
import { createLogger } from '../../core/logger.ts';
import { BOT_FRAMEWORK_ISSUER, foreignKey, startBotFrameworkIssuer, type BotFrameworkIssuer } from '../support/bot-framework-issuer.ts';
import { OPERATOR, messageActivity, startHarness, type Harness } from '../support/bot-harness.ts';

/**
 * The bot's inbound token check, end to end: real restify + CloudAdapter, with
 * ToBotFromChannelOpenIdMetadataUrl pointed at a local OpenID metadata/JWKS endpoint. Every token
 * that fails validation is answered 401 with a short body (no stack, no library message); a valid
 * one is let through.
 */
const APP_ID = '4f0b6c8e-2a1d-4e7b-9c3f-5d8a1b2c3d4f';
const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';

let h: Harness;
let issuer: BotFrameworkIssuer;
let bot: RunningBot;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  issuer = await startBotFrameworkIssuer();
  h = await startHarness({
    instances: 0,
    env: { MicrosoftAppId: APP_ID, MicrosoftAppPassword: 'not-used-without-a-reply', MicrosoftAppType: 'SingleTenant', MicrosoftAppTenantId: TENANT_ID },
  });
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  bot = await startBot(h.config, { redis: h.redis, host: '127.0.0.1', botFrameworkEndpoints: issuer.endpoints, logger: createLogger({ name: 'bot', level: 'warn', destination }) });
});

afterAll(async () => {
  await bot?.close();
  await h?.close();
  await issuer?.close();
});

/** A typing activity needs no reply, so a valid token gets through without any outbound call. */
function typingActivity(): Record<string, unknown> {
  const { text: _text, textFormat: _format, entities: _entities, ...rest } = messageActivity(h, OPERATOR, 'status');
  return { ...rest, type: 'typing' };
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: BOT_FRAMEWORK_ISSUER, aud: APP_ID, serviceurl: h.connector.url, nbf: now - 60, iat: now - 60, exp: now + 3600, ...overrides };
}

async function send(authorization: string | undefined, activity: Record<string, unknown> = typingActivity()): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== undefined) headers['authorization'] = authorization;
  const res = await fetch(`${bot.url}/api/messages`, { method: 'POST', headers, body: JSON.stringify(activity) });
  return { status: res.status, text: await res.text() };
}

function expectUnauthorized(res: { status: number; text: string }): void {
  expect(res.status).toBe(401);
  expect(res.text).toContain(unauthorizedMessage);
  expect(res.text).not.toMatch(/\n\s+at |node_modules|signature|jwt|Error/);
}

describe('the inbound token check (POST /api/messages with authentication on)', () => {
  it('lets a token signed with the published key through (200)', async () => {
    expect((await send(`Bearer ${issuer.sign(claims())}`)).status).toBe(200);
  });

  it('answers 401, not 500, to a forged RS256 token: the published kid, signed with another key', async () => {
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims(), { key: foreignKey() })}`));
    const refused = logLines.find((l) => l['msg'] === 'refused an activity: its Bot Framework token is not valid (401)');
    expect(refused).toMatchObject({ reason: 'invalid signature' });
  });

  it('answers 401 to a token signed with a key that is not in the JWKS', async () => {
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims(), { key: foreignKey(), kid: 'not-published' })}`));
  });

  it('answers 401 to an unsigned token (alg none) naming the published kid', async () => {
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims(), { alg: 'none' })}`));
  });

  it('answers 401 to a token for another bot (wrong audience)', async () => {
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims({ aud: '00000000-0000-0000-0000-000000000000' }))}`));
  });

  it('answers 401 to an expired token and to one not valid yet', async () => {
    const now = Math.floor(Date.now() / 1000);
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims({ iat: now - 7200, nbf: now - 7200, exp: now - 3600 }))}`));
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims({ nbf: now + 3600 }))}`));
  });

  it('answers 401 to a token from another issuer', async () => {
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims({ iss: 'https://attacker.example' }))}`));
  });

  it('answers 401 to a token issued for another channel service URL', async () => {
    expectUnauthorized(await send(`Bearer ${issuer.sign(claims({ serviceurl: 'https://smba.trafficmanager.net/evil/' }))}`));
  });

  it('answers 401 without an Authorization header, or with garbage in it, and never runs the turn', async () => {
    const before = h.connector.posts().length;
    for (const header of [undefined, '', 'garbage', 'Bearer garbage', 'Bearer a.b.c', 'Basic dXNlcjpwdw==', `Bearer ${'x'.repeat(5000)}`]) {
      expectUnauthorized(await send(header, messageActivity(h, OPERATOR, 'status')));
    }
    expect(h.connector.posts().length).toBe(before);
  });

  it('answers 400 to a body that is not an activity', async () => {
    const res = await send(`Bearer ${issuer.sign(claims())}`, { text: 'no type' });
    expect(res.status).toBe(400);
  });

  it('answers 500 (and logs it) when the signing keys cannot be loaded: the bot is at fault, not the caller', async () => {
    // A fresh issuer: the key cache of botbuilder is per metadata URL.
    const down = await startBotFrameworkIssuer();
    down.failWith(503);
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const other = await startBot(h.config, { redis: h.redis, host: '127.0.0.1', botFrameworkEndpoints: down.endpoints, logger: createLogger({ name: 'bot', level: 'warn', destination }) });
    try {
      const res = await fetch(`${other.url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${down.sign(claims())}` },
        body: JSON.stringify(typingActivity()),
      });
      expect(res.status).toBe(500);
      expect(await res.text()).not.toMatch(/\n\s+at |node_modules|openID/);
      expect(lines.find((l) => l['msg'] === 'could not check the token of an activity (500)')).toMatchObject({ level: 50, reason: expect.stringContaining('503') as unknown });
    } finally {
      await other.close();
      await down.close();
    }
  });
});
