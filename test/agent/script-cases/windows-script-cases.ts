import type { AnyScriptCase } from '../../support/script-case.ts';
import { NO_KEY_PFX, REGISTERED_CERT, RENEWED_CERT, S2S_CERT } from './test-certificates.ts';

const ASYNC = 'MSCRMAsyncService';
const MAINTENANCE = 'MSCRMAsyncService$maintenance';
const ACCOUNT = 'CONTOSO\\svc-crmasync';
const computers = {
  CRMAPP01: { services: { [ASYNC]: 'Running', [MAINTENANCE]: 'Stopped' } },
  CRMAPP02: { services: { [ASYNC]: 'Stopped' }, certificates: [{ derBase64: S2S_CERT.derBase64 }] },
};
const windows = { computerName: 'CRMAPP01', computers };

/**
 * The async-service server scripts (Windows stand-ins: services, LocalMachine\My, remoting). The
 * store holds public certificates only: a private key's KeySpec, container file and ACL use
 * Windows-only .NET (RSACryptoServiceProvider.CspKeyContainerInfo, RSACng, NTAccount.Translate,
 * FileSystemAccessRule), which throws PlatformNotSupportedException on Linux, so those paths do
 * not run here (powershell-run.test.ts lists them).
 */
export const windowsScriptCases: AnyScriptCase[] = [
  {
    name: 'restarts both async services on this machine',
    script: 'Restart-CrmAsyncServices',
    params: { ComputerName: 'CRMAPP01' },
    state: { windows },
    expect: { output: { services: [{ name: ASYNC, status: 'Running' }, { name: MAINTENANCE, status: 'Running' }] } },
    calls: { of: ['Restart-Service', 'Invoke-Command'], are: [
      { command: 'Restart-Service', args: { ComputerName: 'CRMAPP01', Name: [ASYNC], Force: true } },
      { command: 'Restart-Service', args: { ComputerName: 'CRMAPP01', Name: [MAINTENANCE], Force: true } },
    ] },
  },
  {
    name: 'restarts through Invoke-Command on another server, and fails there for a missing service',
    script: 'Restart-CrmAsyncServices',
    params: { ComputerName: 'CRMAPP02' },
    state: { windows },
    expect: { error: /^Restart-CrmAsyncServices on CRMAPP02: Cannot find any service with service name 'MSCRMAsyncService\$maintenance'/ },
    calls: { of: ['Invoke-Command', 'Restart-Service'], are: [
      { command: 'Invoke-Command', args: { ComputerName: ['CRMAPP02'] } },
      { command: 'Restart-Service', args: { ComputerName: 'CRMAPP02', Name: [ASYNC] } },
      { command: 'Restart-Service', args: { ComputerName: 'CRMAPP02', Name: [MAINTENANCE] } },
    ] },
  },
  {
    name: 'fails with WinRM\'s error for a server remoting does not reach',
    script: 'Restart-CrmAsyncServices',
    params: { ComputerName: 'CRMAPP09' },
    state: { windows },
    expect: { error: /^Restart-CrmAsyncServices on CRMAPP09: \[CRMAPP09\] Connecting to remote server CRMAPP09 failed/ },
  },
  {
    name: 'reports a certificate that is not in the store, the services, and a same-subject certificate',
    script: 'Get-MachineCertificate',
    params: { ComputerName: 'CRMAPP01', Thumbprint: S2S_CERT.thumbprint.toLowerCase(), SubjectDer: S2S_CERT.subjectDer, ServiceAccount: ACCOUNT },
    state: { windows: { computerName: 'CRMAPP01', computers: { CRMAPP01: { services: { [ASYNC]: 'Running' }, certificates: [{ derBase64: RENEWED_CERT.derBase64 }, { derBase64: REGISTERED_CERT.derBase64 }] } } } },
    expect: { output: { found: false, keySpec: null, hasPrivateKey: false, serviceAccountCanRead: false, duplicateSubject: true, services: [{ name: ASYNC, status: 'Running' }, { name: MAINTENANCE, status: 'NotInstalled' }] } },
  },
  {
    name: 'finds the certificate on another server through Invoke-Command (without its private key)',
    script: 'Get-MachineCertificate',
    params: { ComputerName: 'CRMAPP02', Thumbprint: S2S_CERT.thumbprint, SubjectDer: S2S_CERT.subjectDer, ServiceAccount: ACCOUNT },
    state: { windows },
    expect: { output: { found: true, keySpec: null, hasPrivateKey: false, serviceAccountCanRead: false, duplicateSubject: false, services: [{ name: ASYNC, status: 'Stopped' }, { name: MAINTENANCE, status: 'NotInstalled' }] } },
    calls: { of: ['Invoke-Command'], are: [{ command: 'Invoke-Command', args: { ComputerName: ['CRMAPP02'], ArgumentList: [S2S_CERT.thumbprint, S2S_CERT.subjectDer, ACCOUNT] } }] },
  },
  {
    name: 'refuses to grant access to a certificate that is not in the store',
    script: 'Grant-CertificateKeyAccess',
    params: { ComputerName: 'CRMAPP01', Thumbprint: S2S_CERT.thumbprint, ServiceAccount: ACCOUNT },
    state: { windows },
    expect: { error: new RegExp(`^Grant-CertificateKeyAccess on CRMAPP01: The certificate ${S2S_CERT.thumbprint} is not in LocalMachine\\\\My\\.`) },
  },
  {
    name: 'refuses to grant access to a certificate without a private key',
    script: 'Grant-CertificateKeyAccess',
    params: { ComputerName: 'CRMAPP02', Thumbprint: S2S_CERT.thumbprint.toLowerCase(), ServiceAccount: ACCOUNT },
    state: { windows },
    expect: { error: /has no private key \(private key not found\)/ },
  },
  {
    name: 'refuses a PFX without the password variable',
    script: 'Import-S2SCertificate',
    params: (files) => ({ ComputerName: 'CRMAPP01', PfxPath: files['s2s.pfx'] ?? '' }),
    files: { 's2s.pfx': S2S_CERT.pfx },
    env: { SETUP_PFX_PASSWORD: null },
    state: { windows },
    expect: { error: /^Import-S2SCertificate on CRMAPP01: SETUP_PFX_PASSWORD is not set/ },
  },
  {
    name: 'refuses a PFX whose subject another certificate in the store has, through Invoke-Command',
    script: 'Import-S2SCertificate',
    params: (files) => ({ ComputerName: 'CRMAPP02', PfxPath: files['renewed.pfx'] ?? '' }),
    files: { 'renewed.pfx': RENEWED_CERT.pfx },
    env: { SETUP_PFX_PASSWORD: RENEWED_CERT.password },
    state: { windows },
    expect: { error: new RegExp(`^Import-S2SCertificate on CRMAPP02: LocalMachine\\\\My already holds another certificate with the subject '.*' \\(thumbprint ${S2S_CERT.thumbprint}\\)`) },
    calls: { of: ['Invoke-Command'], are: [{ command: 'Invoke-Command', args: { ComputerName: ['CRMAPP02'], ArgumentList: [`[byte[${RENEWED_CERT.pfx.length}]]`, '[SecureString]'] } }] },
  },
  {
    name: 'refuses a PFX without a private key',
    script: 'Import-S2SCertificate',
    params: (files) => ({ ComputerName: 'CRMAPP01', PfxPath: files['nokey.pfx'] ?? '' }),
    files: { 'nokey.pfx': NO_KEY_PFX.pfx },
    env: { SETUP_PFX_PASSWORD: NO_KEY_PFX.password },
    state: { windows },
    expect: { error: /^Import-S2SCertificate on CRMAPP01: The PFX holds no certificate with its private key/ },
  },
  {
    name: 'runs up to WindowsIdentity.GetCurrent(), which only Windows has',
    script: 'Test-LocalAdministrator',
    params: {},
    state: {},
    expect: { error: /^Test-LocalAdministrator: .*Windows Principal functionality is not supported on this platform/ },
  },
];
