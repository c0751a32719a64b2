import {
  rollbackStepIds,
  rotationStepIds,
  type CertPlanResult,
  type CertRollbackResult,
  type CertRotateResult,
  type CertStatusResult,
  type CertSummary,
  type StepState,
  type Verification,
} from '../../jobs/cert-types.ts';

/** Certificate results as the agent reports them, for bot tests (public facts only, no key material). */
export const OLD_THUMBPRINT = 'A'.repeat(40);
export const NEW_THUMBPRINT = '0123456789ABCDEF0123456789ABCDEF01234567';

export function certSummary(overrides: Partial<CertSummary> = {}): CertSummary {
  return {
    thumbprint: OLD_THUMBPRINT,
    subject: 'CN=crm-s2s.contoso.com',
    issuer: 'CN=Contoso Issuing CA',
    serialNumber: '01AB',
    notBefore: '2025-01-01T00:00:00.000Z',
    notAfter: '2026-01-01T00:00:00.000Z',
    keyAlgorithm: 'RSA',
    keySize: 2048,
    signatureHash: 'SHA-256',
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extendedKeyUsage: [],
    selfSigned: false,
    hasPrivateKey: true,
    keySpec: 1,
    problems: [],
    ...overrides,
  };
}

export function certStatusResult(overrides: Partial<CertStatusResult> = {}): CertStatusResult {
  return {
    type: 'cert-status',
    registrationRead: true,
    registered: certSummary(),
    servers: ['CRMAPP01', 'CRMAPP02'].map((server) => ({
      server,
      thumbprint: OLD_THUMBPRINT,
      found: true,
      keySpec: 1,
      hasPrivateKey: true,
      serviceAccountCanRead: server === 'CRMAPP01',
      duplicateSubject: false,
      services: [{ name: 'MSCRMAsyncService', status: 'Running' }],
    })),
    entra: {
      servicePrincipalId: 'sp-1',
      spnPresent: true,
      keyCredentials: [{ keyId: 'k1', thumbprint: OLD_THUMBPRINT, displayName: 'CN=crm-s2s.contoso.com', usage: 'Verify', type: 'AsymmetricX509Cert', startDateTime: '2025-01-01T00:00:00.000Z', endDateTime: '2026-01-01T00:00:00.000Z' }],
    },
    serverSettings: { principalId: '00000001-0000-0000-c000-000000000000', metadataUrl: 'https://accounts.accesscontrol.windows.net/metadata/json/1' },
    agree: false,
    daysLeft: 21,
    findings: [{ message: 'CRMAPP02: the async service account cannot read the private key.', fix: 'Grant CONTOSO\\crmasync Read on the private key (certlm.msc → Manage Private Keys).' }],
    ...overrides,
  };
}

export function rotationSteps(state: StepState['state'] = 'pending'): StepState[] {
  return rotationStepIds.map((id) => ({ id, state }));
}

/** Rotation steps as an attempt that stopped at `failedAt`: done before it, failed there, pending after. */
export function rotationStepsFailedAt(failedAt: StepState['id']): StepState[] {
  const at = rotationStepIds.findIndex((id) => id === failedAt);
  return rotationStepIds.map((id, i) => ({ id, state: i < at ? 'done' : i === at ? 'failed' : 'pending' }));
}

/** Rollback steps as a rollback that stopped at `failedAt`: done before it, failed there, pending after. */
export function rollbackStepsFailedAt(failedAt: StepState['id']): StepState[] {
  const at = rollbackStepIds.findIndex((id) => id === failedAt);
  return rollbackStepIds.map((id, i) => ({ id, state: i < at ? 'done' : i === at ? 'failed' : 'pending' }));
}

export function certPlanResult(overrides: Partial<CertPlanResult> = {}): CertPlanResult {
  return {
    type: 'cert-plan',
    file: 's2s-new.pfx',
    current: certSummary(),
    next: certSummary({ thumbprint: NEW_THUMBPRINT, notBefore: '2025-06-01T00:00:00.000Z', notAfter: '2027-06-01T00:00:00.000Z', serialNumber: '02CD' }),
    servers: ['CRMAPP01', 'CRMAPP02'],
    serviceAccount: 'CONTOSO\\crmasync',
    cloud: 'public',
    metadataUrl: 'https://accounts.accesscontrol.windows.net/metadata/json/1',
    verification: { mode: 'sample', mailboxes: 10 },
    retireOld: 'remove',
    steps: rotationStepIds.map((id) => ({ id, state: 'pending', detail: id === 'import' ? 'would import on CRMAPP01 and CRMAPP02' : 'would change' })),
    blocked: false,
    ...overrides,
  };
}

export function verification(failed = 0): Verification {
  return {
    selected: 10,
    succeeded: 10 - failed,
    failed,
    noResult: 0,
    failures: failed > 0
      ? [{ cause: 's2s-auth', title: 'Exchange Online rejected the S2S token', remediation: 'Check the key credential of the CRM service principal in Entra ID.', count: failed, sample: ['alice@contoso.com'] }]
      : [],
  };
}

export function certRotateResult(outcome: CertRotateResult['outcome'], overrides: Partial<CertRotateResult> = {}): CertRotateResult {
  return {
    type: 'cert-rotate',
    outcome,
    newThumbprint: NEW_THUMBPRINT,
    oldThumbprint: OLD_THUMBPRINT,
    steps: rotationStepIds.map((id) => ({ id, state: outcome === 'verification-failed' && id === 'retire-old' ? 'pending' : 'done' })),
    verification: verification(outcome === 'rotated' ? 0 : 3),
    durationMs: 42_000,
    ...overrides,
  };
}

export function certRollbackResult(outcome: CertRollbackResult['outcome'] = 'rolled-back'): CertRollbackResult {
  return {
    type: 'cert-rollback',
    outcome,
    restoredThumbprint: OLD_THUMBPRINT,
    steps: rollbackStepIds.map((id) => ({ id, state: outcome === 'verification-failed' && id === 'retire-failed' ? 'skipped' : 'done' })),
    verification: verification(outcome === 'rolled-back' ? 0 : 2),
    durationMs: 30_000,
  };
}
