import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPreflight } from '../../../../agent/jobs/runbook/preflight.ts';
import type { GetAllOptions } from '../../../../agent/adapters/crm/client.ts';
import { adfsScript, psQuote } from '../../../../agent/steps/runbook/adfs.ts';
import { organizationName } from '../../../../agent/steps/runbook/tenant-id.ts';
import { connectRedis } from '../../../../core/redis-connection.ts';
import { SetupError } from '../../../../core/setup-error.ts';
import type { PreflightCheck } from '../../../../jobs/runbook-types.ts';
import { deletePrefixedKeys } from '../../../support/delete-prefixed-keys.ts';
import { certDirWith, certWorld, makePfx, type CertWorld } from '../../support/cert-world.ts';

/**
 * Preflight with the fakes: every failing check says what was found and what to do; a check that
 * cannot run for missing configuration names the variable. (The simulator test covers the passing
 * run, the role, the local administrator and the Graph permissions.)
 */
let redis: Redis;
const prefix = `t-${randomUUID()}`;

beforeAll(async () => {
  redis = await connectRedis('redis://127.0.0.1:6379');
});
afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  await redis.quit();
});

const byId = (checks: PreflightCheck[]) => new Map(checks.map((c) => [c.id, c]));

/** CRM answers WhoAmI and the roles request ($batch GET) with `roles`. */
function withCrm(w: CertWorld, roles: string[] | Error): void {
  w.ctx.crm = {
    ...w.ctx.crm,
    whoAmI: () => Promise.resolve({ UserId: '11111111-2222-3333-4444-555555555555', BusinessUnitId: 'b', OrganizationId: '3c1d2e4f-0000-4000-8000-00000000c0de' }),
    // eslint-disable-next-line @typescript-eslint/require-await
    getAll: async function* <T>(set: string, options: GetAllOptions<T>): AsyncGenerator<T[]> {
      expect([set, options.related, options.select]).toEqual(['systemusers', { id: '11111111-2222-3333-4444-555555555555', navigation: 'systemuserroles_association' }, ['name', 'roleid']]);
      if (roles instanceof Error) throw roles;
      yield roles.map((name) => options.schema.parse({ name, roleid: randomUUID() }));
    },
  };
}

describe('preflight', () => {
  it('names the variables to set when Graph, the servers and CERT_DIR are not configured', async () => {
    const w = certWorld(redis, prefix, null, { ASYNC_SERVERS: [], ASYNC_SERVICE_ACCOUNT: undefined, CERT_DIR: undefined });
    w.ctx.certs = { ...w.ctx.certs, graphMissing: ['GRAPH_TENANT_ID', 'GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERT_FILE'] };
    withCrm(w, ['System Administrator']);
    const out = await runPreflight(w.ctx);
    const checks = byId(out.checks);
    expect(out.ok).toBe(false);
    expect(checks.get('crm-reachable')?.status).toBe('ok');
    expect(checks.get('crm-admin-role')?.status).toBe('ok');
    expect(checks.get('local-admin')?.status).toBe('ok');
    expect(checks.get('graph-credentials')).toMatchObject({ status: 'failed', fix: expect.stringContaining('Set GRAPH_TENANT_ID, GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERT_FILE') as unknown });
    expect(checks.get('graph-permissions')?.fix).toMatch(/GRAPH_TENANT_ID/);
    expect(checks.get('certificate')).toMatchObject({ status: 'failed', detail: expect.stringContaining('CERT_DIR is not set') as unknown, fix: expect.stringContaining('set CERT_DIR') as unknown });
    expect(checks.get('certificate-servers')?.fix).toMatch(/Set ASYNC_SERVERS and ASYNC_SERVICE_ACCOUNT/);
    expect(checks.get('async-services')?.fix).toMatch(/Set ASYNC_SERVERS and ASYNC_SERVICE_ACCOUNT/);
  });

  it('each failing check says what was found and what to do', async () => {
    const pfx = makePfx('CN=preflight-test.contoso.com', 400);
    const w = certWorld(redis, prefix, null, { CERT_DIR: await certDirWith({ 's2s-new.pfx': pfx.pfx }) });
    w.ctx.crm = { ...w.ctx.crm, whoAmI: () => Promise.reject(new SetupError('CRM_UNREACHABLE', 'connect ECONNREFUSED 10.0.0.5:443', { hint: 'Check CRM_URL.' })) };
    w.s2s.isAdministrator = false;
    w.s2s.graph.roles = ['User.Read.All'];
    w.s2s.fail('Get-MachineCertificate', new SetupError('POWERSHELL_FAILED', 'WinRM cannot complete the operation.'), { server: 'CRMAPP02' });
    const out = await runPreflight(w.ctx);
    const checks = byId(out.checks);
    expect(checks.get('crm-reachable')).toMatchObject({ status: 'failed', detail: expect.stringContaining('ECONNREFUSED') as unknown, fix: 'Check CRM_URL.' });
    expect(checks.get('crm-admin-role')).toMatchObject({ status: 'failed', fix: expect.stringContaining('CRM connection first') as unknown });
    expect(checks.get('local-admin')).toMatchObject({ status: 'failed', detail: expect.stringContaining('not a local administrator') as unknown });
    expect(checks.get('graph-credentials')?.status).toBe('ok');
    expect(checks.get('graph-permissions')).toMatchObject({ status: 'failed', detail: expect.stringContaining('Application.ReadWrite.All and Organization.Read.All') as unknown, fix: expect.stringContaining('Grant admin consent') as unknown });
    // A fresh PFX is the runbook's certificate; self-signed is a warning (evaluation only), not a failure.
    expect(checks.get('certificate')).toMatchObject({ status: 'warning', detail: expect.stringContaining(pfx.thumbprint) as unknown });
    expect(checks.get('certificate')?.detail).toMatch(/self-signed/);
    expect(checks.get('certificate-servers')).toMatchObject({ status: 'failed', detail: expect.stringContaining('CRMAPP02') as unknown, fix: expect.stringContaining('WinRM') as unknown });
    expect(checks.get('async-services')?.status).toBe('failed');
    for (const c of out.checks) if (c.status !== 'ok') expect(c.fix, c.id).toBeTruthy();
  });

  it('the role check fails without System Administrator; a missing certificate is a warning the runbook fixes; stopped services fail', async () => {
    const pfx = makePfx('CN=preflight-test2.contoso.com', 400);
    const w = certWorld(redis, prefix, null, { CERT_DIR: await certDirWith({ 's2s-new.pfx': pfx.pfx }) });
    withCrm(w, ['Salesperson', 'Marketing Manager']);
    const real = w.s2s.run.bind(w.s2s);
    w.ctx.certs = {
      ...w.ctx.certs,
      powershell: {
        run: async (name, params, options) => {
          const out = await real(name, params, options);
          if (name === 'Get-MachineCertificate' && (params as Record<string, string>)['ComputerName'] === 'CRMAPP01') {
            return { ...out, services: [{ name: 'MSCRMAsyncService', status: 'Running' }, { name: 'MSCRMAsyncService$maintenance', status: 'Stopped' }] };
          }
          return out;
        },
      },
    };
    const checks = byId((await runPreflight(w.ctx)).checks);
    expect(checks.get('crm-admin-role')).toMatchObject({ status: 'failed', detail: expect.stringContaining('Salesperson, Marketing Manager') as unknown });
    expect(checks.get('certificate-servers')).toMatchObject({ status: 'warning', detail: expect.stringContaining('not yet on CRMAPP01, CRMAPP02') as unknown });
    expect(checks.get('async-services')).toMatchObject({ status: 'failed', detail: expect.stringContaining('MSCRMAsyncService$maintenance on CRMAPP01 is Stopped') as unknown });
  });

  it('a registered certificate missing on a server without its PFX fails, with what to do', async () => {
    const current = makePfx('CN=registered.contoso.com', 400);
    const w = certWorld(redis, prefix, current, { CERT_DIR: await certDirWith({}) });
    w.s2s.stores.get('CRMAPP02')?.clear();
    withCrm(w, ['System Administrator']);
    const checks = byId((await runPreflight(w.ctx)).checks);
    expect(checks.get('certificate')).toMatchObject({ status: 'warning', detail: expect.stringContaining(`the registered certificate CN=registered.contoso.com, thumbprint ${current.thumbprint}`) as unknown });
    expect(checks.get('certificate-servers')).toMatchObject({ status: 'failed', detail: expect.stringContaining('not on CRMAPP02') as unknown, fix: expect.stringContaining('as s2s-new.pfx') as unknown });
  });
});

describe('the tenant and AD FS steps', () => {
  it('finds the organization name in CRM_ORG_NAME or CRM_URL, else CONFIG_MISSING naming CRM_ORG_NAME', () => {
    expect(organizationName({ CRM_ORG_NAME: 'Contoso_Prod', CRM_URL: 'https://crm.contoso.local/x' })).toBe('Contoso_Prod');
    expect(organizationName({ CRM_ORG_NAME: undefined, CRM_URL: 'https://crm.contoso.local/contoso' })).toBe('contoso');
    try {
      organizationName({ CRM_ORG_NAME: undefined, CRM_URL: 'https://contoso.crm.contoso.local' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(SetupError);
      expect((error as SetupError).code).toBe('CONFIG_MISSING');
      expect((error as SetupError).hint).toMatch(/CRM_ORG_NAME/);
    }
  });

  it('writes the AD FS script with every value quoted', () => {
    expect(psQuote("it's")).toBe("'it''s'");
    expect(psQuote('a\u2019b')).toBe("'a\u2019\u2019b'");
    expect(() => psQuote('a\nb')).toThrow(SetupError);
    const script = adfsScript('3C1D2E4F-0000-4000-8000-00000000C0DE', "https://crm.contoso.local/o'hara/");
    expect(script).toContain("Add-AdfsClient -ClientId '3c1d2e4f-0000-4000-8000-00000000c0de' -Name 'Dynamics 365 App for Outlook' -RedirectUri 'https://crm.contoso.local/o''hara/crmmailapp/code_auth.aspx'");
    expect(script).toContain('$s = Get-CrmSetting -SettingType OAuthClaimsSettings');
    expect(script).toContain('Set-CrmSetting -Setting $s');
    expect(() => adfsScript("x'; Remove-Item C:\\", 'https://crm')).toThrow(SetupError);
  });
});
