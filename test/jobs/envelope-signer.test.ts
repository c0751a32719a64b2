import { describe, expect, it } from 'vitest';
import { EnvelopeSigner } from '../../jobs/envelope-signer.ts';
import { signJob, signReport, verifyJob, verifyReport } from '../../jobs/job-options.ts';
import { canonicalJson } from '../../jobs/canonical-json.ts';
import type { JobPayload, Report } from '../../jobs/job-types.ts';
import { SetupError } from '../../core/setup-error.ts';

const key = 'k'.repeat(40);
const payload: JobPayload = {
  type: 'approve',
  runId: 'abcdef1234',
  deployment: 'default',
  requestedBy: '11111111-1111-1111-1111-111111111111',
  approvedBy: '22222222-2222-2222-2222-222222222222',
  filter: { kind: 'pending' },
  plannedCount: 12,
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof SetupError ? e.code : 'not a SetupError';
  }
  return undefined;
}

describe('canonicalJson', () => {
  it('orders keys so equal values give equal bytes', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: 'q' } })).toBe('{"a":{"c":"q","d":[1,{"x":1,"y":2}]},"b":1}');
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
  });
  it('refuses values JSON cannot carry faithfully', () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow();
    expect(() => canonicalJson({ a: 1n })).toThrow();
  });
});

describe('EnvelopeSigner', () => {
  it('round-trips a job', () => {
    const signer = new EnvelopeSigner({ key });
    const envelope = signJob(signer, payload);
    expect(verifyJob(signer, JSON.parse(JSON.stringify(envelope)))).toEqual(payload);
  });

  it('rejects a short key at construction', () => {
    expect(() => new EnvelopeSigner({ key: 'short' })).toThrow(/at least 32/);
  });

  it('rejects a job whose body was changed after signing', () => {
    const signer = new EnvelopeSigner({ key });
    const envelope = signJob(signer, payload);
    const tampered = { ...envelope, body: { ...envelope.body, filter: { kind: 'all' } } };
    expect(codeOf(() => verifyJob(signer, tampered))).toBe('JOB_SIGNATURE_INVALID');
  });

  it('rejects a job whose expiry was extended', () => {
    const signer = new EnvelopeSigner({ key });
    const envelope = signJob(signer, payload);
    const tampered = { ...envelope, sig: { ...envelope.sig, exp: envelope.sig.exp + 1 } };
    expect(codeOf(() => verifyJob(signer, tampered))).toBe('JOB_SIGNATURE_INVALID');
  });

  it('rejects a missing signature and a different key', () => {
    const signer = new EnvelopeSigner({ key });
    expect(codeOf(() => verifyJob(signer, { body: payload }))).toBe('JOB_SIGNATURE_INVALID');
    expect(codeOf(() => verifyJob(signer, payload))).toBe('JOB_SIGNATURE_INVALID');
    const other = new EnvelopeSigner({ key: 'x'.repeat(40) });
    expect(codeOf(() => verifyJob(signer, signJob(other, payload)))).toBe('JOB_SIGNATURE_INVALID');
  });

  it('rejects an expired job', () => {
    let now = 1_000_000;
    const signer = new EnvelopeSigner({ key, now: () => now });
    const envelope = signJob(signer, payload);
    now += 25 * 60 * 60_000;
    expect(codeOf(() => verifyJob(signer, envelope))).toBe('JOB_EXPIRED');
  });

  it('rejects a signed body that breaks the contract', () => {
    const signer = new EnvelopeSigner({ key });
    const envelope = signer.sign('job', { ...payload, filter: { kind: 'odata', text: "1 eq 1" } }, 60_000);
    expect(codeOf(() => verifyJob(signer, envelope))).toBe('JOB_INVALID');
  });

  it('does not accept a report as a job or a job as a report', () => {
    const signer = new EnvelopeSigner({ key });
    const report: Report = {
      runId: 'abcdef1234',
      deployment: 'default',
      jobType: 'approve',
      seq: 1,
      at: new Date().toISOString(),
      event: { kind: 'started' },
    };
    const signedReport = signReport(signer, report);
    expect(verifyReport(signer, signedReport)).toEqual(report);
    expect(codeOf(() => verifyJob(signer, signedReport))).toBe('JOB_SIGNATURE_INVALID');
    expect(codeOf(() => verifyReport(signer, signJob(signer, payload)))).toBe('JOB_SIGNATURE_INVALID');
  });
});

describe('exceedsPlan', () => {
  it('allows a small drift and refuses a selection that grew', async () => {
    const { exceedsPlan } = await import('../../jobs/job-types.ts');
    expect(exceedsPlan(12, 12)).toBe(false);
    expect(exceedsPlan(12, 17)).toBe(false);
    expect(exceedsPlan(12, 18)).toBe(true);
    expect(exceedsPlan(1000, 1100)).toBe(false);
    expect(exceedsPlan(1000, 1101)).toBe(true);
    expect(exceedsPlan(0, 6)).toBe(true);
  });
});
