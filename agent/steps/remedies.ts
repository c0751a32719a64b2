import type { StepId } from '../../jobs/cert-types.ts';

/**
 * What to do when a step fails for a reason the known-errors table (known-errors.ts, from
 * d365-contract.md) does not recognise: where to look for that step. A recognised cause's own
 * remediation always comes first; this is the fallback, so no halted run is left without a hint.
 */
export const stepRemedies: Readonly<Record<StepId, string>> = {
  preflight: 'Fix each failed check as it says (`@setup preflight` shows them all), then Retry step.',
  validate: 'Check the PFX in CERT_DIR with `npm run cert -- inspect <file>` on the agent host and fix what it reports, then ask for a new plan.',
  'validate-old': "Check with `@setup cert status` that the old certificate is still in every server's store and in Entra ID.",
  import:
    "Check that the agent reaches the server with PowerShell remoting as a local administrator, that the PFX and CERT_PFX_PASSWORD match, and that LocalMachine\\My holds no other certificate with the same subject; then Retry step.",
  'grant-key-access':
    "Check that the agent is a local administrator on the server and that ASYNC_SERVICE_ACCOUNT names the account MSCRMAsyncService runs as; grant it Read on the private key by hand (Manage Private Keys) if needed, then Retry step.",
  'register-crm':
    'Run Set-CrmCertificate by hand on the Deployment Tools server to see the full error (the agent needs the Deployment Administrator role and the Microsoft.Crm.PowerShell snap-in), fix it, then Retry step.',
  'entra-key-credential':
    'Check the Graph app registration: admin-consented Application.ReadWrite.All, a valid client secret or certificate, and the right tenant (GRAPH_TENANT_ID); then Retry step.',
  's2s-settings':
    'Check that the Deployment Web Service answers and that the agent has the Deployment Administrator role (Get-CrmAdvancedSetting -ConfigurationEntityName ServerSettings), then Retry step.',
  'tenant-id':
    'Check that CRM_ORG_NAME (or the last part of CRM_URL) is the organization\'s unique name and that the agent has the Deployment Administrator role (try Get-CrmOrganization by hand), then Retry step.',
  'ews-access':
    "Check that the app registration (GRAPH_CLIENT_ID) holds Exchange.ManageAsApp and the Exchange Administrator role, that its certificate (EXO_CERT_THUMBPRINT) is in the agent account's store and that the ExchangeOnlineManagement module is installed; or run Set-OrganizationConfig -EwsEnabled $true and -EwsAllowedAppIDs by hand. Then Retry step.",
  'restart-services':
    "Check MSCRMAsyncService and 'MSCRMAsyncService$maintenance' in services.msc on the server (the event log says why a service does not start), start them, then Retry step.",
  verify: "Read the failed mailboxes' alerts in CRM; `@setup cert status` shows which part of S2S disagrees.",
  'retire-old': 'Remove the old key credential from the Dynamics CRM service principal in Entra ID by hand, or Retry step later.',
  'retire-failed': 'Remove the failed key credential from the Dynamics CRM service principal in Entra ID by hand, or Retry step later.',
  'email-profile':
    "Check that the agent's CRM account may create and update email server profiles (System Administrator), and the PROFILE_* settings; then Retry step.",
  'org-defaults': "Check that the agent's CRM account may update the organization's system settings (System Administrator), then Retry step.",
  'configure-mailboxes':
    "Check the failed mailboxes in CRM (owner, Mailbox privileges Read and Write) and that the agent's account may update mailboxes, then Retry step: only the mailboxes not yet configured are changed.",
  'approve-email':
    'Approve Email needs prvApproveRejectEmailAddress for the account that approves: check its security role, then Retry step: only the mailboxes not yet approved are changed.',
  'mark-primary-org':
    "Check that the agent's CRM account may update mailboxes (Read and Write on Mailbox), then Retry step: only the mailboxes not yet marked are changed.",
  'test-enable':
    "Read the failed mailboxes' alerts in CRM and fix what they say, then Retry step: only the mailboxes whose test did not succeed are tested again.",
  adfs: 'Check SETUP_ADFS and CRM_URL on the agent, then Retry step.',
};
