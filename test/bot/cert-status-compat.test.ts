import { describe, expect, it } from 'vitest';
import { certStatusResultSchema, type CertStatusResult } from '../../jobs/cert-types.ts';
import { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { reportTtlMs, verifyReport } from '../../jobs/job-options.ts';
import { jobResultSchema } from '../../jobs/job-types.ts';
import { certStatusResult } from '../support/cert-fixtures.ts';

/** A bot reading the cert-status result of an agent from before `registrationRead` existed. */
const signer = new EnvelopeSigner({ key: 'test-signing-key-0123456789abcdef-0123456789' });

function olderAgentsResult(): Omit<CertStatusResult, 'registrationRead'> {
  const { registrationRead: _dropped, ...rest } = certStatusResult();
  return rest;
}

describe('cert-status result from an older agent', () => {
  it('without registrationRead: the report verifies and reads as "the registration was read"', () => {
    const body = { runId: 'abcdef1234', deployment: 'contoso', jobType: 'cert-status', seq: 1, at: '2030-01-01T00:00:00.000Z', event: { kind: 'result', result: olderAgentsResult() } };
    const report = verifyReport(signer, signer.sign('report', body, reportTtlMs));
    expect(report.event.kind === 'result' && report.event.result.type === 'cert-status' ? report.event.result.registrationRead : undefined).toBe(true);
    // Stored on the run and read back (jobResultSchema), the same.
    const stored = jobResultSchema.parse(JSON.parse(JSON.stringify(olderAgentsResult())));
    expect(stored.type === 'cert-status' ? stored.registrationRead : undefined).toBe(true);
  });

  it('a newer agent\'s false stays false, and anything but a boolean is refused', () => {
    expect(certStatusResultSchema.parse(certStatusResult({ registrationRead: false, registered: null, daysLeft: null })).registrationRead).toBe(false);
    expect(certStatusResultSchema.safeParse({ ...olderAgentsResult(), registrationRead: 'no' }).success).toBe(false);
    // The type flows as the output: registrationRead is a plain boolean there.
    const read: boolean = certStatusResultSchema.parse(olderAgentsResult()).registrationRead;
    expect(read).toBe(true);
  });
});
