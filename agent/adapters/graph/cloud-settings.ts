/**
 * What the CLOUD setting means: the S2S metadata URL CRM's server settings must name, and the
 * login and Graph hosts the agent talks to (GRAPH_LOGIN_URL / GRAPH_URL override the last two, for
 * other national clouds and the simulator). Values from docs/cert-rotation.md and
 * shared/d365-contract.md (the GCC High hosts are marked unverified there for this scenario).
 */
export type Cloud = 'public' | 'usgovhigh';

export interface CloudSettings {
  /** S2SDefaultAuthorizationServerMetadataUrl. */
  metadataUrl: string;
  /** Token authority host (the tenant is appended by the Graph client). */
  loginUrl: string;
  /** Microsoft Graph host. */
  graphUrl: string;
  /** Connect-ExchangeOnline -ExchangeEnvironmentName (d365-contract.md: GCC High is O365USGovGCCHigh). */
  exchangeEnvironment: 'O365Default' | 'O365USGovGCCHigh';
}

export const cloudSettings: Readonly<Record<Cloud, Readonly<CloudSettings>>> = {
  public: {
    metadataUrl: 'https://accounts.accesscontrol.windows.net/metadata/json/1',
    loginUrl: 'https://login.microsoftonline.com',
    graphUrl: 'https://graph.microsoft.com',
    exchangeEnvironment: 'O365Default',
  },
  usgovhigh: {
    metadataUrl: 'https://login.microsoftonline.us/metadata/json/1',
    loginUrl: 'https://login.microsoftonline.us',
    graphUrl: 'https://graph.microsoft.us',
    exchangeEnvironment: 'O365USGovGCCHigh',
  },
};

/** The cloud's defaults with the configured host overrides applied. */
export function resolveCloudSettings(cloud: Cloud, overrides: { loginUrl?: string | undefined; graphUrl?: string | undefined } = {}): CloudSettings {
  const base = cloudSettings[cloud];
  return {
    metadataUrl: base.metadataUrl,
    loginUrl: overrides.loginUrl ?? base.loginUrl,
    graphUrl: overrides.graphUrl ?? base.graphUrl,
    exchangeEnvironment: base.exchangeEnvironment,
  };
}
