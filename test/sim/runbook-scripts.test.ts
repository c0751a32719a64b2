import { beforeEach, describe, expect, it } from 'vitest';
import type { PowershellScriptName } from '../../agent/adapters/powershell/scripts.ts';
import { runSimulatedScript, type PowershellApiResult } from '../../sim/powershell-api.ts';
import { customKeyIdentifierOf, DEFAULT_SERVICE_ACCOUNT, PUBLIC_METADATA_URL, S2S_PRINCIPAL_ID, seedS2S, SIM_TENANT_ID } from '../../sim/s2s-seed.ts';
import { s2sHealth, type S2SState } from '../../sim/s2s-state.ts';
import { createSimCertificate, simPfx } from '../../sim/sim-certificates.ts';

const DAY = 86_400_000;
const OTHER_TENANT = '11111111-2222-4333-8444-555555555555';

describe('the runbook scripts against the simulated state', () => {
  let s2s: S2SState;
  let now: number;
  beforeEach(() => {
    now = Date.now();
    s2s = seedS2S({ nowMs: now, scenario: 'fresh', orgName: 'contoso', organizationId: 'c0ffee00-0000-4000-8000-00000000c0de' });
  });

  const run = (script: PowershellScriptName, params: Record<string, string> = {}, extra: { files?: Record<string, string>; password?: string } = {}): PowershellApiResult =>
    runSimulatedScript(s2s, { script, params, files: extra.files ?? {}, password: extra.password ?? null }, now);
  const ok = (result: PowershellApiResult): Record<string, unknown> => {
    if (!result.ok) throw new Error(`script failed: ${result.message}`);
    return result.output;
  };
  const error = (result: PowershellApiResult): string => {
    if (result.ok) throw new Error(`script succeeded: ${JSON.stringify(result.output)}`);
    return result.message;
  };

  it('Test-LocalAdministrator answers the knob (default true) and the agent user', () => {
    expect(ok(run('Test-LocalAdministrator'))).toEqual({ isAdministrator: true, user: 'CONTOSO\\crmsetup' });
    s2s.agentHost.isAdministrator = false;
    expect(ok(run('Test-LocalAdministrator'))).toEqual({ isAdministrator: false, user: 'CONTOSO\\crmsetup' });
    expect(s2s.changeCounts).toEqual({});
  });

  it('Get-S2STenantId finds the organization by unique name in any case, and refuses another name as Get-CrmOrganization', () => {
    expect(ok(run('Get-S2STenantId', { OrganizationName: 'CONTOSO' }))).toEqual({ organizationId: 'c0ffee00-0000-4000-8000-00000000c0de', tenantId: null });
    expect(error(run('Get-S2STenantId', { OrganizationName: 'fabrikam' }))).toMatch(/^Get-S2STenantId: Get-CrmOrganization : .*'fabrikam' does not exist/);
    expect(error(run('Get-S2STenantId', { OrganizationName: "contoso'; Remove-Item" }))).toContain('Cannot validate argument on parameter \'OrganizationName\'');
    expect(error(run('Get-S2STenantId'))).toContain('missing mandatory parameters: OrganizationName');
  });

  it('Set-S2STenantId sets, reads back, changes nothing the second time, and counts only the change', () => {
    expect(ok(run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: SIM_TENANT_ID.toUpperCase() }))).toEqual({
      organizationId: 'c0ffee00-0000-4000-8000-00000000c0de', tenantId: SIM_TENANT_ID, changed: true,
    });
    expect(s2s.organization.s2sTenantId).toBe(SIM_TENANT_ID);
    expect(ok(run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: SIM_TENANT_ID }))).toMatchObject({ changed: false });
    expect(ok(run('Get-S2STenantId', { OrganizationName: 'contoso' }))).toMatchObject({ tenantId: SIM_TENANT_ID });
    expect(s2s.changeCounts).toEqual({ 'Set-S2STenantId': 1 });
    expect(ok(run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: OTHER_TENANT }))).toMatchObject({ tenantId: OTHER_TENANT, changed: true });
    expect(s2s.changeCounts).toEqual({ 'Set-S2STenantId': 2 });
  });

  it('Set-S2STenantId refuses a tenant id that is not a GUID (ValidatePattern) and an unknown organization, changing nothing', () => {
    expect(error(run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: 'contoso.onmicrosoft.com' }))).toContain("Cannot validate argument on parameter 'TenantId'");
    expect(error(run('Set-S2STenantId', { OrganizationName: 'other', TenantId: SIM_TENANT_ID }))).toContain('Get-CrmOrganization');
    expect(s2s.organization.s2sTenantId).toBeNull();
    expect(s2s.changeCounts).toEqual({});
  });

  it('an injected fault fails the script with the message CRM would write and changes nothing', () => {
    s2s.faults.push({ target: 'Set-S2STenantId', message: 'The user does not have the Deployment Administrator role.', times: 1 });
    expect(error(run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: SIM_TENANT_ID }))).toBe('Set-S2STenantId: The user does not have the Deployment Administrator role.');
    expect(s2s.organization.s2sTenantId).toBeNull();
    expect(ok(run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: SIM_TENANT_ID }))).toMatchObject({ changed: true });
  });

  it('a hangMs fault lets the script make its change and asks for a late answer', () => {
    s2s.faults.push({ target: 'Set-S2STenantId', times: 1, hangMs: 1500 });
    const result = run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: SIM_TENANT_ID });
    expect(result).toMatchObject({ ok: true, hangMs: 1500, output: { changed: true } });
    expect(s2s.organization.s2sTenantId).toBe(SIM_TENANT_ID);
    expect(s2s.faults).toEqual([]);
  });

  it('on a fresh deployment, the procedure done by the scripts (plus the key credential) makes S2S healthy; done again, nothing is counted twice except restarts and registration', () => {
    const next = createSimCertificate({ commonName: 'crm-s2s.contoso.com', notBefore: new Date(now - DAY), notAfter: new Date(now + 400 * DAY), keyLabel: 'fresh-runbook' });
    const pfx = simPfx(next, 'pw').toString('base64');
    const cer = Buffer.from(next.derBase64, 'base64').toString('base64');
    const once = (): void => {
      for (const server of ['CRMAPP01', 'CRMAPP02']) {
        ok(run('Import-S2SCertificate', { ComputerName: server, PfxPath: 'C:\\certs\\new.pfx' }, { files: { PfxPath: pfx }, password: 'pw' }));
        ok(run('Grant-CertificateKeyAccess', { ComputerName: server, Thumbprint: next.thumbprint, ServiceAccount: DEFAULT_SERVICE_ACCOUNT }));
      }
      ok(run('Register-S2SCertificate', { CerPath: 'C:\\certs\\new.cer' }, { files: { CerPath: cer } }));
      ok(run('Set-S2SServerSettings', { PrincipalId: S2S_PRINCIPAL_ID, MetadataUrl: PUBLIC_METADATA_URL }));
      ok(run('Set-S2STenantId', { OrganizationName: 'contoso', TenantId: SIM_TENANT_ID }));
    };
    once();
    s2s.servicePrincipal.keyCredentials.push({
      keyId: 'f0f0f0f0-0000-4000-8000-000000000001', type: 'AsymmetricX509Cert', usage: 'Verify', customKeyIdentifier: customKeyIdentifierOf(next.thumbprint),
      displayName: next.subject, startDateTime: next.notBefore, endDateTime: next.notAfter, key: next.derBase64,
    });
    expect(s2sHealth(s2s, now + 1)).toMatchObject({ ok: false, reason: 'services-not-restarted' });
    now += 1000;
    for (const server of ['CRMAPP01', 'CRMAPP02']) ok(run('Restart-CrmAsyncServices', { ComputerName: server }));
    expect(s2sHealth(s2s, now)).toEqual({ ok: true });
    expect(s2s.changeCounts).toEqual({
      'Import-S2SCertificate': 2, 'Grant-CertificateKeyAccess': 2, 'Register-S2SCertificate': 1, 'Set-S2SServerSettings': 1, 'Set-S2STenantId': 1, 'Restart-CrmAsyncServices': 2,
    });
    once();
    expect(s2s.changeCounts).toMatchObject({ 'Import-S2SCertificate': 2, 'Grant-CertificateKeyAccess': 2, 'Set-S2SServerSettings': 1, 'Set-S2STenantId': 1, 'Register-S2SCertificate': 2 });
  });
});
