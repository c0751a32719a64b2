import type { AnyScriptCase } from '../../support/script-case.ts';

/**
 * The Exchange Online scripts (stand-ins: test/support/powershell/exchange-standins.ps1, state
 * `exchange`: organizationConfig, mailboxes, moduleInstalled, connectError). A case is one entry:
 *   { name, script: 'Get-EwsAccess', params: { AppId, Organization, … },
 *     state: { exchange: { organizationConfig: { EwsEnabled: false, EwsAllowedAppIDs: [] } } },
 *     expect: { output: { … } } or { error: /…/ },
 *     calls: { of: ['Set-OrganizationConfig'], are: [{ command: 'Set-OrganizationConfig', args: { EwsEnabled: true } }] } }
 * powershell-run.test.ts fails for a table script without a case.
 */
export const exchangeScriptCases: AnyScriptCase[] = [];
