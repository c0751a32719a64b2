import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BotFrameworkEndpoints } from '../../bot/bot-adapter.ts';

/** The issuer of Bot Framework channel tokens (what Teams' tokens carry in `iss`). */
export const BOT_FRAMEWORK_ISSUER = 'https://api.botframework.com';

/**
 * A stand-in for the Bot Framework's OpenID metadata and JWKS endpoints, for end-to-end tests of
 * the bot's inbound token check: it publishes one RSA key and signs tokens as the channel does
 * (RS256, `kid` in the JWKS, endorsed for msteams). `status` makes the metadata answer an error.
 */
export interface BotFrameworkIssuer {
  /** The endpoints to give the bot (ToBotFromChannelOpenIdMetadataUrl and the rest). */
  endpoints: BotFrameworkEndpoints;
  /** The id of the published key. */
  kid: string;
  /** Signs `claims` as a JWT; by default RS256 with the published key. */
  sign(claims: Record<string, unknown>, options?: { key?: KeyObject; kid?: string; alg?: string }): string;
  /** Makes the metadata endpoint answer this status from now on (200 again with undefined). */
  failWith(status: number | undefined): void;
  close(): Promise<void>;
}

export async function startBotFrameworkIssuer(): Promise<BotFrameworkIssuer> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const jwk = publicKey.export({ format: 'jwk' });
  let failure: number | undefined;
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (failure !== undefined) return json(failure, { error: 'unavailable' });
    if (path === '/v1/.well-known/openidconfiguration') {
      return json(200, { issuer: BOT_FRAMEWORK_ISSUER, jwks_uri: `${origin}/v1/.well-known/keys`, id_token_signing_alg_values_supported: ['RS256'], token_endpoint_auth_methods_supported: ['private_key_jwt'] });
    }
    if (path === '/v1/.well-known/keys') {
      return json(200, { keys: [{ kty: 'RSA', use: 'sig', kid, n: jwk.n, e: jwk.e, endorsements: ['msteams'] }] });
    }
    return json(404, { error: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    kid,
    endpoints: {
      ToBotFromChannelOpenIdMetadataUrl: `${origin}/v1/.well-known/openidconfiguration`,
      ToBotFromEmulatorOpenIdMetadataUrl: `${origin}/v1/.well-known/openidconfiguration`,
      ToBotFromChannelTokenIssuer: BOT_FRAMEWORK_ISSUER,
      ToChannelFromBotLoginUrl: 'https://login.microsoftonline.com/botframework.com',
      ToChannelFromBotOAuthScope: 'https://api.botframework.com',
      OAuthUrl: `${origin}/oauth`,
      CallerId: 'urn:botframework:azure',
    },
    sign(claims, options = {}) {
      const alg = options.alg ?? 'RS256';
      const header = { alg, typ: 'JWT', kid: options.kid ?? kid };
      const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
      const signingInput = `${part(header)}.${part(claims)}`;
      if (alg === 'none') return `${signingInput}.`;
      const signer = createSign('RSA-SHA256');
      signer.update(signingInput);
      return `${signingInput}.${signer.sign(options.key ?? privateKey).toString('base64url')}`;
    },
    failWith(status) {
      failure = status;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An RSA key the issuer does not publish: what a forger has. */
export function foreignKey(): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}
