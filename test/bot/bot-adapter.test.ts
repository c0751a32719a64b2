import { ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import { ConnectorClient, ManagedIdentityAppCredentials, MicrosoftAppCredentials, type ServiceClientCredentials } from 'botframework-connector';
import { describe, expect, it } from 'vitest';
import { SetupTeamsAdapter, classifyAuthenticationFailure } from '../../bot/bot-adapter.ts';
import { loadBotConfig } from '../../bot/bot-config.ts';
import { silentLogger } from '../../core/logger.ts';

/**
 * What botbuilder builds from our configuration for each app type, seen through the path every
 * proactive send takes (TeamsPoster → continueConversationAsync → the connector client of the
 * turn). Nothing here fetches a token: credentials get one only when a request is signed.
 */
const key = 'k'.repeat(32);
const APP_ID = '4f0b6c8e-2a1d-4e7b-9c3f-5d8a1b2c3d4f';
const MSI_CLIENT_ID = '8d1c2b3a-4f5e-4a6b-9c7d-0e1f2a3b4c5d';
const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';

async function outboundCredentials(env: Record<string, string>): Promise<{ adapter: SetupTeamsAdapter; credentials: ServiceClientCredentials }> {
  const config = loadBotConfig({ JOB_SIGNING_KEY: key, ...env });
  const adapter = new SetupTeamsAdapter(config, { logger: silentLogger() });
  let credentials: ServiceClientCredentials | undefined;
  const reference = { channelId: 'msteams', serviceUrl: 'https://smba.trafficmanager.net/emea/', conversation: { id: '19:x@thread.tacv2', isGroup: true, conversationType: 'channel', name: '' }, bot: { id: `28:${config.appId}`, name: 'setup' } };
  await adapter.continueConversationAsync(config.appId, reference, async (ctx) => {
    const client: unknown = ctx.turnState.get(ctx.adapter.ConnectorClientKey);
    expect(client).toBeInstanceOf(ConnectorClient);
    credentials = (client as ConnectorClient).credentials;
    await Promise.resolve();
  });
  if (!credentials) throw new Error('the turn did not run');
  return { adapter, credentials };
}

describe('the credentials botbuilder builds from our configuration', () => {
  it('UserAssignedMSI: managed-identity credentials for the identity\'s client id, no password, authentication on', async () => {
    const { adapter, credentials } = await outboundCredentials({ MicrosoftAppType: 'UserAssignedMSI', MicrosoftAppId: MSI_CLIENT_ID, MicrosoftAppTenantId: TENANT_ID, NODE_ENV: 'production' });
    expect(adapter.credentialsFactory).toBeInstanceOf(ConfigurationServiceClientCredentialFactory);
    expect(credentials).toBeInstanceOf(ManagedIdentityAppCredentials);
    expect(credentials).toMatchObject({ appId: MSI_CLIENT_ID, oAuthScope: 'https://api.botframework.com' });
    expect(await adapter.credentialsFactory.isAuthenticationDisabled()).toBe(false);
    // Inbound tokens must be for the identity's client id (their `aud`).
    expect(await adapter.credentialsFactory.isValidAppId(MSI_CLIENT_ID)).toBe(true);
    expect(await adapter.credentialsFactory.isValidAppId(APP_ID)).toBe(false);
  });

  it('accepts botbuilder\'s own spelling UserAssignedMsi too', () => {
    expect(loadBotConfig({ JOB_SIGNING_KEY: key, MicrosoftAppType: 'UserAssignedMsi', MicrosoftAppId: MSI_CLIENT_ID, MicrosoftAppTenantId: TENANT_ID }).auth.MicrosoftAppType).toBe('UserAssignedMSI');
  });

  it('SingleTenant: client-secret credentials that sign in at the bot\'s own tenant', async () => {
    const { credentials } = await outboundCredentials({ MicrosoftAppType: 'SingleTenant', MicrosoftAppId: APP_ID, MicrosoftAppPassword: 'secret', MicrosoftAppTenantId: TENANT_ID, NODE_ENV: 'production' });
    expect(credentials).toBeInstanceOf(MicrosoftAppCredentials);
    expect(credentials).not.toBeInstanceOf(ManagedIdentityAppCredentials);
    expect(credentials).toMatchObject({ appId: APP_ID, appPassword: 'secret', oAuthEndpoint: `https://login.microsoftonline.com/${TENANT_ID}` });
  });

  it('MultiTenant (what an unset type means): the multi-tenant botframework.com authority, which a single-tenant registration cannot use', async () => {
    for (const env of [{ MicrosoftAppType: 'MultiTenant' }, {}]) {
      const { credentials } = await outboundCredentials({ MicrosoftAppId: APP_ID, MicrosoftAppPassword: 'secret', ...env });
      expect(credentials).toBeInstanceOf(MicrosoftAppCredentials);
      expect((credentials as MicrosoftAppCredentials).oAuthEndpoint).toBe('https://login.microsoftonline.com/botframework.com');
    }
  });
});

describe('classifyAuthenticationFailure', () => {
  it('401 for the token\'s faults, 500 for the bot\'s', () => {
    const jwtError = Object.assign(new Error('invalid signature'), { name: 'JsonWebTokenError' });
    expect(classifyAuthenticationFailure(jwtError).status).toBe(401);
    expect(classifyAuthenticationFailure(Object.assign(new Error('jwt not active'), { name: 'NotBeforeError' })).status).toBe(401);
    expect(classifyAuthenticationFailure(Object.assign(new Error('Failed to load openID config: 503'), { statusCode: 500 })).status).toBe(500);
    expect(classifyAuthenticationFailure(new TypeError('fetch failed')).status).toBe(500);
  });
});
