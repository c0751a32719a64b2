import { ConfigurationServiceClientCredentialFactory, StatusCodes, type Activity, type InvokeResponse, type TurnContext } from 'botbuilder';
import { TeamsAdapter } from '@microsoft/teams-ai';
import { AuthenticationError, type AuthenticateRequestResult } from 'botframework-connector';
import type { Logger } from '../core/logger.ts';
import type { BotConfig } from './bot-config.ts';
import { createConnectorHttpClient } from './connector-http-client.ts';

/**
 * The Bot Framework endpoints botbuilder would otherwise take from its public-cloud defaults
 * (ConfigurationBotFrameworkAuthentication's option names). Setting one means setting all of them
 * (issuer, OAuth scope, login URL, both OpenID metadata URLs, OAuth URL, caller id). For a national
 * cloud, or a local OpenID metadata endpoint in tests.
 */
export interface BotFrameworkEndpoints {
  ToBotFromChannelOpenIdMetadataUrl: string;
  ToBotFromEmulatorOpenIdMetadataUrl: string;
  ToBotFromChannelTokenIssuer: string;
  ToChannelFromBotLoginUrl: string;
  ToChannelFromBotOAuthScope: string;
  OAuthUrl: string;
  CallerId: string;
}

export interface BotAdapterOptions {
  logger: Pick<Logger, 'warn' | 'error'>;
  endpoints?: BotFrameworkEndpoints;
}

/** What a caller whose token failed any check is told (the reason goes to the log only). */
export const unauthorizedMessage = 'Unauthorized: the request has no valid Bot Framework token.';
/** What a caller is told when the bot failed on its side (the error goes to the log only). */
export const internalErrorMessage = 'The bot could not process the request; the details are in its log.';

/** jsonwebtoken's errors for a token that is malformed, badly signed, expired or not yet valid. */
const tokenErrorNames = new Set(['JsonWebTokenError', 'TokenExpiredError', 'NotBeforeError']);

/**
 * How a failure to authenticate an inbound request is answered: 401 when the request's token is at
 * fault, otherwise (the signing keys could not be loaded, a bug) a plain error, answered 500.
 *
 * botbuilder's CloudAdapter answers 401 only for an `AuthenticationError`, and any of those
 * (including its own "Failed to load openID config", statusCode 500). But JwtTokenExtractor
 * rethrows jsonwebtoken's JsonWebTokenError as it is when a token names a known key id and its
 * signature does not verify ("invalid signature": a forged RS256 token), so that got a 500 with
 * the error's message as the body.
 */
export function classifyAuthenticationFailure(error: unknown): { status: 401 | 500; reason: string } {
  const reason = error instanceof Error ? error.message : String(error);
  if (error instanceof AuthenticationError || AuthenticationError.isStatusCodeError(error)) {
    return { status: (error as { statusCode: number }).statusCode === 401 ? 401 : 500, reason };
  }
  if (error instanceof Error && tokenErrorNames.has(error.name)) return { status: 401, reason };
  return { status: 500, reason };
}

/**
 * teams-ai's TeamsAdapter (a botbuilder CloudAdapter) with ConfigurationBotFrameworkAuthentication
 * from the bot's four standard variables, one credentials factory shared by inbound validation,
 * proactive sends and the adapter's own `credentialsFactory`, and inbound authentication failures
 * answered 401 (never 500) with a fixed body; the reason is logged.
 */
export class SetupTeamsAdapter extends TeamsAdapter {
  readonly #logger: Pick<Logger, 'warn' | 'error'>;

  constructor(config: Pick<BotConfig, 'auth'>, options: BotAdapterOptions) {
    const settings = { ...config.auth, ...options.endpoints };
    // botbuilder builds this factory itself when given none; building it here lets the one
    // instance serve TeamsAdapter.credentialsFactory as well (and lets the tests see its type).
    // MultiTenant / unset: PasswordServiceClientCredentialFactory (tenant botframework.com);
    // SingleTenant: the same bound to MicrosoftAppTenantId; UserAssignedMSI:
    // ManagedIdentityServiceClientCredentialsFactory (MicrosoftAppId = the identity's client id).
    const credentials = new ConfigurationServiceClientCredentialFactory(config.auth);
    const connectorOptions = { httpClient: createConnectorHttpClient() } as unknown as ConstructorParameters<typeof TeamsAdapter>[3];
    super(settings, credentials, undefined, connectorOptions);
    this.#logger = options.logger;
  }

  /** Authenticates first, so that a failure there is told apart from one while running the turn. */
  protected override async processActivity(
    authHeaderOrResult: string | AuthenticateRequestResult,
    activity: Activity,
    logic: (context: TurnContext) => Promise<void>,
  ): Promise<InvokeResponse | undefined> {
    let result: AuthenticateRequestResult;
    if (typeof authHeaderOrResult === 'string') {
      try {
        result = await this.botFrameworkAuthentication.authenticateRequest(activity, authHeaderOrResult);
      } catch (error) {
        const { status, reason } = classifyAuthenticationFailure(error);
        const facts = { activityId: activity.id, channelId: activity.channelId, serviceUrl: activity.serviceUrl, reason };
        if (status === 401) {
          this.#logger.warn(facts, 'refused an activity: its Bot Framework token is not valid (401)');
          throw new AuthenticationError(unauthorizedMessage, StatusCodes.UNAUTHORIZED);
        }
        this.#logger.error({ ...facts, err: error }, 'could not check the token of an activity (500)');
        throw new Error(internalErrorMessage);
      }
    } else {
      result = authHeaderOrResult;
    }
    try {
      return await super.processActivity(result, activity, logic);
    } catch (error) {
      // Errors in the turn itself go to onTurnError; what lands here failed around it.
      this.#logger.error({ err: error, activityId: activity.id }, 'could not process an activity (500)');
      throw new Error(internalErrorMessage);
    }
  }
}
