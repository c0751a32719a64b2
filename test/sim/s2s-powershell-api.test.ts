import { X509Certificate } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { subjectDerBase64 } from '../../agent/certkit/kit.ts';
import { makeEvaluationPfx } from '../../agent/certkit/evaluation-pfx.ts';
import type { PowershellScriptName } from '../../agent/adapters/powershell/scripts.ts';
import { runSimulatedScript, type PowershellApiResult } from '../../sim/powershell-api.ts';
import { customKeyIdentifierOf, DEFAULT_SERVICE_ACCOUNT, PUBLIC_METADATA_URL, S2S_PRINCIPAL_ID, seedS2S } from '../../sim/s2s-seed.ts';
import { s2sHealth, type S2SState } from '../../sim/s2s-state.ts';
import { createSimCertificate, simPfx, simPfxWithoutKey, type SimCertificateMaterial } from '../../sim/sim-certificates.ts';

const DAY = 86_400_000;
const PASSWORD = 'pfx-pass';
const ACCOUNT = DEFAULT_SERVICE_ACCOUNT;
/** -SubjectDer as the agent sends it (cert-kit). */
const subjectDer = (cert: { derBase64: string }): string => subjectDerBase64(cert.derBase64);
const pemToDer = (pem: string): { derBase64: string } => ({ derBase64: pem.replace(/-----[A-Z ]+-----|\s+/g, '') });

function base64(bytes: Buffer): string {
  return bytes.toString('base64');
}

describe('seeded S2S state', () => {
  it('is healthy: registered, on both servers with KeySpec 1 and key access, a key credential, settings, services restarted', () => {
    const now = Date.now();
    const s2s = seedS2S({ nowMs: now });
    expect(s2sHealth(s2s, now)).toEqual({ ok: true });
    const cert = s2s.crmCertificate;
    if (!cert) throw new Error('no registered certificate');
    const x509 = new X509Certificate(Buffer.from(cert.derBase64, 'base64'));
    expect(x509.fingerprint.replace(/:/g, '')).toBe(cert.thumbprint);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(Math.round((Date.parse(cert.notAfter) - now) / DAY)).toBe(200);
    expect(s2s.servers.map((s) => s.name)).toEqual(['CRMAPP01', 'CRMAPP02']);
    for (const server of s2s.servers) {
      expect(server.store.get(cert.thumbprint)).toMatchObject({ keySpec: 1, hasPrivateKey: true, keyReaders: ['contoso\\crmasync'] });
      for (const service of Object.values(server.services)) expect(service.startedAt).toBeGreaterThanOrEqual(s2s.lastS2SChangeAt);
    }
    expect(s2s.servicePrincipal.keyCredentials).toEqual([
      expect.objectContaining({ key: cert.derBase64, type: 'AsymmetricX509Cert', usage: 'Verify', customKeyIdentifier: customKeyIdentifierOf(cert.thumbprint) }),
    ]);
    expect(s2s.servicePrincipal.servicePrincipalNames).toContain('00000007-0000-0000-c000-000000000000');
    expect(s2s.serverSettings).toEqual({ principalId: S2S_PRINCIPAL_ID, metadataUrl: PUBLIC_METADATA_URL });
    expect(s2s.app.clientSecret).toBe('sim-client-secret');
  });

  it('follows the options: servers, account, days left (an expired certificate is unhealthy)', () => {
    const now = Date.now();
    const s2s = seedS2S({ nowMs: now, asyncServers: ['APP1', 'APP2', 'APP3'], serviceAccount: 'FABRIKAM\\svc', certDaysLeft: -1, graphClientSecret: 'other' });
    expect(s2s.servers.map((s) => s.name)).toEqual(['APP1', 'APP2', 'APP3']);
    expect(s2s.servers[2]?.store.values().next().value?.keyReaders).toEqual(['fabrikam\\svc']);
    expect(s2s.app.clientSecret).toBe('other');
    expect(s2sHealth(s2s, now)).toMatchObject({ ok: false, reason: 'certificate-expired' });
  });
});

describe('simulated PowerShell scripts (POST /_sim/powershell handler)', () => {
  let s2s: S2SState;
  let now: number;
  let next: SimCertificateMaterial;

  beforeEach(() => {
    now = Date.now();
    s2s = seedS2S({ nowMs: now });
    next = createSimCertificate({ commonName: 'crm-s2s-2027.contoso.com', notBefore: new Date(now - DAY), notAfter: new Date(now + 500 * DAY), keyLabel: 'api-next' });
  });

  const run = (script: PowershellScriptName, params: Record<string, string>, extra: { files?: Record<string, string>; password?: string | null } = {}): PowershellApiResult =>
    runSimulatedScript(s2s, { script, params, files: extra.files ?? {}, password: extra.password === undefined ? null : extra.password }, now);
  const ok = (result: PowershellApiResult): Record<string, unknown> => {
    if (!result.ok) throw new Error(`script failed: ${result.message}`);
    return result.output;
  };
  const error = (result: PowershellApiResult): string => {
    if (result.ok) throw new Error(`script succeeded: ${JSON.stringify(result.output)}`);
    return result.message;
  };
  const importNext = (server: string, password: string | null = PASSWORD, pfx = simPfx(next, PASSWORD)): PowershellApiResult =>
    run('Import-S2SCertificate', { ComputerName: server, PfxPath: 'C:\\certs\\next.pfx' }, { files: { PfxPath: base64(pfx) }, password });

  it('imports a good PFX with KeySpec 1 and no key readers yet; a second import finds it present', () => {
    expect(ok(importNext('CRMAPP01'))).toEqual({ thumbprint: next.thumbprint, keySpec: 1, alreadyPresent: false });
    expect(s2s.servers[0]?.store.get(next.thumbprint)).toMatchObject({ keySpec: 1, hasPrivateKey: true, keyReaders: [], subject: 'CN=crm-s2s-2027.contoso.com, O=Contoso' });
    expect(s2s.servers[1]?.store.has(next.thumbprint)).toBe(false);
    expect(ok(importNext('crmapp01'))).toEqual({ thumbprint: next.thumbprint, keySpec: 1, alreadyPresent: true });
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: next.thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }))).toMatchObject({
      found: true, keySpec: 1, hasPrivateKey: true, serviceAccountCanRead: false, duplicateSubject: false,
    });
  });

  it('fixes a KeySpec 2 certificate by importing it again from a PFX whose key bag gives KeySpec 1', () => {
    s2s.servers[0]?.store.set(next.thumbprint, { ...next, keySpec: 2, hasPrivateKey: true, keyReaders: ['contoso\\crmasync'] });
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: next.thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }))).toMatchObject({ keySpec: 2 });
    expect(ok(importNext('CRMAPP01'))).toMatchObject({ keySpec: 1, alreadyPresent: false });
    expect(s2s.servers[0]?.store.get(next.thumbprint)?.keySpec).toBe(1);
  });

  it('refuses a wrong password as X509Certificate2Collection.Import does, changing nothing; a missing password is not an empty one', () => {
    expect(error(importNext('CRMAPP01', 'wrong'))).toContain('The specified network password is not correct');
    expect(error(importNext('CRMAPP01', ''))).toContain('The specified network password is not correct');
    expect(error(importNext('CRMAPP01', null))).toContain('SETUP_PFX_PASSWORD is not set');
    expect(s2s.servers[0]?.store.has(next.thumbprint)).toBe(false);
  });

  it('imports a PFX protected by the empty password', () => {
    const empty = makeEvaluationPfx({ subject: 'CN=crm-s2s-empty.contoso.com, O=Contoso', days: 300, password: '', now });
    expect(ok(importNext('CRMAPP01', '', empty.pfx))).toEqual({ thumbprint: empty.thumbprint, keySpec: 1, alreadyPresent: false });
    expect(s2s.servers[0]?.store.get(empty.thumbprint)).toMatchObject({ keySpec: 1, hasPrivateKey: true });
  });

  it('takes the KeySpec from the PFX key bag as Windows does: anything but 1 fails with the certutil fix and leaves nothing in the store', () => {
    const cases = [
      { keySpec: 'exchange', expected: 1 },
      { keySpec: 'none', expected: 1 },
      { keySpec: 'signature', expected: 2 },
      { keySpec: 'cng', expected: 0 },
    ] as const;
    for (const [index, c] of cases.entries()) {
      const subject = `CN=crm-s2s-${c.keySpec}.contoso.com, O=Contoso`;
      const pfx = makeEvaluationPfx({ subject, days: 300, password: PASSWORD, now, keySpec: c.keySpec, ...(index % 2 ? { encryption: 'legacy' as const } : {}) });
      const result = importNext('CRMAPP02', PASSWORD, pfx.pfx);
      if (c.expected === 1) {
        expect(ok(result)).toEqual({ thumbprint: pfx.thumbprint, keySpec: 1, alreadyPresent: false });
        expect(s2s.servers[1]?.store.get(pfx.thumbprint), c.keySpec).toMatchObject({ subject, keySpec: 1, hasPrivateKey: true, keyReaders: [] });
      } else {
        const message = error(result);
        expect(message).toContain(`KeySpec ${c.expected}`);
        expect(message).toContain('certutil -importpfx <file> AT_KEYEXCHANGE');
        // The script removes what it added (the certificate and its persisted key).
        expect(s2s.servers[1]?.store.has(pfx.thumbprint), c.keySpec).toBe(false);
        expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP02', Thumbprint: pfx.thumbprint, SubjectDer: subjectDer(pemToDer(pfx.certPem)), ServiceAccount: ACCOUNT }))).toMatchObject({ found: false, keySpec: null, duplicateSubject: false });
      }
    }
  });

  it('refuses a PFX without its key, changing nothing', () => {
    expect(error(importNext('CRMAPP02', PASSWORD, simPfxWithoutKey(next, PASSWORD)))).toContain('no certificate with its private key');
    expect(s2s.servers[1]?.store.has(next.thumbprint)).toBe(false);
    expect(error(run('Grant-CertificateKeyAccess', { ComputerName: 'CRMAPP02', Thumbprint: next.thumbprint, ServiceAccount: ACCOUNT }))).toContain('is not in LocalMachine\\My');
  });

  it('refuses to import next to another certificate with the same subject ("private key not found")', () => {
    const same = createSimCertificate({ commonName: 'crm-s2s.contoso.com', notBefore: new Date(now - DAY), notAfter: new Date(now + 500 * DAY), keyLabel: 'api-same-subject' });
    const message = error(run('Import-S2SCertificate', { ComputerName: 'CRMAPP01', PfxPath: 'same.pfx' }, { files: { PfxPath: base64(simPfx(same, PASSWORD)) }, password: PASSWORD }));
    expect(message).toContain('private key not found');
    expect(message).toContain(s2s.crmCertificate?.thumbprint ?? 'x');
    expect(s2s.servers[0]?.store.has(same.thumbprint)).toBe(false);
    // Seen before the import too: -SubjectDer is compared whether or not -Thumbprint is in the store.
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: same.thumbprint, SubjectDer: subjectDer(same), ServiceAccount: ACCOUNT }))).toMatchObject({ found: false, duplicateSubject: true });
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: same.thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }))).toMatchObject({ found: false, duplicateSubject: false });
    // The certificate itself is no duplicate of itself.
    const current = s2s.crmCertificate;
    if (!current) throw new Error('no registered certificate');
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: current.thumbprint, SubjectDer: subjectDer(current), ServiceAccount: ACCOUNT }))).toMatchObject({ found: true, duplicateSubject: false });
    // Put there anyway (by hand): both report the duplicate.
    s2s.servers[0]?.store.set(same.thumbprint, { ...same, keySpec: 1, hasPrivateKey: true, keyReaders: [] });
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: same.thumbprint, SubjectDer: subjectDer(same), ServiceAccount: ACCOUNT }))).toMatchObject({ found: true, duplicateSubject: true });
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: current.thumbprint, SubjectDer: subjectDer(current), ServiceAccount: ACCOUNT }))).toMatchObject({ found: true, duplicateSubject: true });
  });

  it('compares subjects as DER: a same-subject renewal with ST, emailAddress and a comma in a value is a duplicate, another subject is not', () => {
    const subject = 'CN=crm-s2s.contoso.com, OU=CRM\\, Sync, O=Contoso\\, Ltd., L=Redmond, ST=Washington, C=US, E=crm-admin@contoso.com';
    const installed = makeEvaluationPfx({ subject, days: 300, password: PASSWORD, now });
    const renewal = makeEvaluationPfx({ subject, days: 700, password: PASSWORD, now: now + DAY });
    const other = makeEvaluationPfx({ subject: subject.replace('CN=crm-s2s.contoso.com', 'CN=crm-s2s-2027.contoso.com'), days: 700, password: PASSWORD, now });
    expect(renewal.thumbprint).not.toBe(installed.thumbprint);
    expect(ok(importNext('CRMAPP01', PASSWORD, installed.pfx))).toMatchObject({ keySpec: 1, alreadyPresent: false });
    // Windows writes this subject as "E=…, S=Washington, …" and the agent as "…, ST=Washington, …": the texts differ, the bytes do not.
    const stored = s2s.servers[0]?.store.get(installed.thumbprint);
    expect(stored?.subject).toContain('S=Washington');
    expect(stored?.subject).not.toContain('ST=');
    expect(stored?.subject).toContain('O="Contoso, Ltd."');
    expect(subjectDer(pemToDer(renewal.certPem))).toBe(subjectDer(pemToDer(installed.certPem)));

    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: renewal.thumbprint, SubjectDer: subjectDer(pemToDer(renewal.certPem)), ServiceAccount: ACCOUNT })))
      .toMatchObject({ found: false, duplicateSubject: true });
    expect(error(importNext('CRMAPP01', PASSWORD, renewal.pfx))).toContain('private key not found');
    expect(s2s.servers[0]?.store.has(renewal.thumbprint)).toBe(false);
    // The installed certificate is no duplicate of itself; another server's store has neither.
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: installed.thumbprint, SubjectDer: subjectDer(pemToDer(installed.certPem)), ServiceAccount: ACCOUNT })))
      .toMatchObject({ found: true, duplicateSubject: false });
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP02', Thumbprint: renewal.thumbprint, SubjectDer: subjectDer(pemToDer(renewal.certPem)), ServiceAccount: ACCOUNT })))
      .toMatchObject({ found: false, duplicateSubject: false });

    // A different CN, everything else equal: no duplicate, and it imports.
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: other.thumbprint, SubjectDer: subjectDer(pemToDer(other.certPem)), ServiceAccount: ACCOUNT })))
      .toMatchObject({ found: false, duplicateSubject: false });
    expect(ok(importNext('CRMAPP01', PASSWORD, other.pfx))).toEqual({ thumbprint: other.thumbprint, keySpec: 1, alreadyPresent: false });
  });

  it('grants key access (idempotently); breakage keyAccessNotApplied reports success without granting', () => {
    ok(importNext('CRMAPP01'));
    ok(importNext('CRMAPP02'));
    expect(ok(run('Grant-CertificateKeyAccess', { ComputerName: 'CRMAPP01', Thumbprint: next.thumbprint.toLowerCase(), ServiceAccount: ACCOUNT }))).toEqual({ granted: true, alreadyHad: false });
    expect(ok(run('Grant-CertificateKeyAccess', { ComputerName: 'CRMAPP01', Thumbprint: next.thumbprint, ServiceAccount: 'contoso\\CRMASYNC' }))).toEqual({ granted: true, alreadyHad: true });
    expect(s2s.servers[0]?.store.get(next.thumbprint)?.keyReaders).toEqual(['contoso\\crmasync']);

    s2s.breakage.keyAccessNotApplied = true;
    expect(ok(run('Grant-CertificateKeyAccess', { ComputerName: 'CRMAPP02', Thumbprint: next.thumbprint, ServiceAccount: ACCOUNT }))).toEqual({ granted: true, alreadyHad: false });
    expect(s2s.servers[1]?.store.get(next.thumbprint)?.keyReaders).toEqual([]);
    expect(ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP02', Thumbprint: next.thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }))).toMatchObject({ serviceAccountCanRead: false });
    expect(error(run('Grant-CertificateKeyAccess', { ComputerName: 'CRMAPP02', Thumbprint: 'F'.repeat(40), ServiceAccount: ACCOUNT }))).toContain('is not in LocalMachine\\My');
  });

  it('Register-S2SCertificate records the certificate from the .cer (DER or PEM) and the time of the change', () => {
    const before = s2s.lastS2SChangeAt;
    now += 1000;
    expect(ok(run('Register-S2SCertificate', { CerPath: 'C:\\temp\\next.cer' }, { files: { CerPath: base64(Buffer.from(next.derBase64, 'base64')) } }))).toEqual({ thumbprint: next.thumbprint });
    expect(s2s.crmCertificate).toMatchObject({ thumbprint: next.thumbprint, derBase64: next.derBase64, registeredAt: now, subject: next.subject, notAfter: next.notAfter });
    expect(s2s.lastS2SChangeAt).toBe(now);
    expect(s2s.lastS2SChangeAt).toBeGreaterThan(before);
    expect(ok(run('Get-S2SCertificate', {}))).toEqual({ registered: true, derBase64: next.derBase64 });

    const old = createSimCertificate({ commonName: 'old.contoso.com', notBefore: new Date(now - DAY), notAfter: new Date(now + DAY), keyLabel: 'api-old' });
    expect(ok(run('Register-S2SCertificate', { CerPath: 'old.cer' }, { files: { CerPath: base64(Buffer.from(old.certificatePem)) } }))).toEqual({ thumbprint: old.thumbprint });
    expect(error(run('Register-S2SCertificate', { CerPath: 'missing.cer' }))).toContain("Cannot find path 'missing.cer'");
    expect(error(run('Register-S2SCertificate', { CerPath: 'bad.cer' }, { files: { CerPath: base64(Buffer.from('not a certificate')) } }))).toContain('not an X.509 certificate');
  });

  it('server settings: read, set only when different (a change needs a restart)', () => {
    s2s.serverSettings = { principalId: null, metadataUrl: null };
    expect(ok(run('Get-S2SServerSettings', {}))).toEqual({ principalId: null, metadataUrl: null });
    now += 5000;
    expect(ok(run('Set-S2SServerSettings', { PrincipalId: S2S_PRINCIPAL_ID, MetadataUrl: PUBLIC_METADATA_URL }))).toEqual({ changed: true });
    expect(s2s.lastS2SChangeAt).toBe(now);
    now += 5000;
    expect(ok(run('Set-S2SServerSettings', { PrincipalId: S2S_PRINCIPAL_ID, MetadataUrl: PUBLIC_METADATA_URL }))).toEqual({ changed: false });
    expect(s2s.lastS2SChangeAt).toBe(now - 5000);
    expect(error(run('Set-S2SServerSettings', { PrincipalId: S2S_PRINCIPAL_ID, MetadataUrl: 'http://insecure' }))).toContain("parameter 'MetadataUrl'");
  });

  it('Restart-CrmAsyncServices starts both services now', () => {
    now += 60_000;
    expect(ok(run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP02.contoso.local' }))).toEqual({
      services: [{ name: 'MSCRMAsyncService', status: 'Running' }, { name: 'MSCRMAsyncService$maintenance', status: 'Running' }],
    });
    expect(s2s.servers[1]?.services.MSCRMAsyncService.startedAt).toBe(now);
    expect(s2s.servers[1]?.services['MSCRMAsyncService$maintenance'].startedAt).toBe(now);
    expect(s2s.servers[0]?.services.MSCRMAsyncService.startedAt).toBeLessThan(now);
  });

  it('answers an unknown server as remoting would, and binds parameters as PowerShell does', () => {
    expect(error(run('Get-MachineCertificate', { ComputerName: 'CRMAPP07', Thumbprint: next.thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }))).toMatch(/Connecting to remote server CRMAPP07 failed.*WinRM/);
    expect(error(run('Restart-CrmAsyncServices', {}))).toContain('missing mandatory parameters: ComputerName');
    expect(error(run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01', Force: 'x' }))).toContain("parameter name 'Force'");
    expect(error(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: 'xyz', SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }))).toContain("parameter 'Thumbprint'");
    // -SubjectDer is base64 (the ValidatePattern of the .ps1): a name as text is refused.
    expect(error(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: next.thumbprint, SubjectDer: next.subject, ServiceAccount: ACCOUNT }))).toContain("parameter 'SubjectDer'");
    expect(error(runSimulatedScript(s2s, { script: 'Remove-Everything', params: {}, files: {}, password: null }, now))).toContain('-File parameter does not exist');
  });

  it('faults fire `times` times, for the script or for one server', () => {
    s2s.faults.push({ target: 'Restart-CrmAsyncServices', message: 'Service cannot be stopped due to the following error: Access is denied', times: 2 });
    s2s.faults.push({ target: 'Get-MachineCertificate@crmapp02', message: 'WinRM timed out', times: 1 });
    expect(error(run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01' }))).toBe('Restart-CrmAsyncServices on CRMAPP01: Service cannot be stopped due to the following error: Access is denied');
    expect(error(run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP02' }))).toContain('Access is denied');
    ok(run('Restart-CrmAsyncServices', { ComputerName: 'CRMAPP01' }));
    const thumbprint = s2s.crmCertificate?.thumbprint ?? '';
    ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP01', Thumbprint: thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }));
    expect(error(run('Get-MachineCertificate', { ComputerName: 'CRMAPP02', Thumbprint: thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }))).toContain('WinRM timed out');
    ok(run('Get-MachineCertificate', { ComputerName: 'CRMAPP02', Thumbprint: thumbprint, SubjectDer: subjectDer(next), ServiceAccount: ACCOUNT }));
    expect(s2s.faults).toEqual([]);
  });

  it('health follows the rotation: key access missing, then services not restarted, then the key credential missing', () => {
    for (const server of ['CRMAPP01', 'CRMAPP02']) ok(importNext(server));
    now += 1000;
    ok(run('Register-S2SCertificate', { CerPath: 'next.cer' }, { files: { CerPath: next.derBase64 } }));
    expect(s2sHealth(s2s, now)).toMatchObject({ ok: false, reason: 'key-not-readable' });
    for (const server of ['CRMAPP01', 'CRMAPP02']) ok(run('Grant-CertificateKeyAccess', { ComputerName: server, Thumbprint: next.thumbprint, ServiceAccount: ACCOUNT }));
    expect(s2sHealth(s2s, now)).toMatchObject({ ok: false, reason: 'services-not-restarted' });
    now += 1000;
    for (const server of ['CRMAPP01', 'CRMAPP02']) ok(run('Restart-CrmAsyncServices', { ComputerName: server }));
    const health = s2sHealth(s2s, now);
    expect(health).toMatchObject({ ok: false, reason: 'no-key-credential' });
    expect(health.ok ? '' : health.traceText).toContain('401 Unauthorized');
    s2s.servicePrincipal.keyCredentials.push({
      keyId: 'k2', type: 'AsymmetricX509Cert', usage: 'Verify', customKeyIdentifier: null, displayName: null,
      startDateTime: next.notBefore, endDateTime: next.notAfter, key: next.derBase64,
    });
    expect(s2sHealth(s2s, now)).toEqual({ ok: true });
  });
});
