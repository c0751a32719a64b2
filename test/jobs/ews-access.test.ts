import { describe, expect, it } from 'vitest';
import { EWS_SHUTDOWN_AT, ewsDaysLeft, isAfterEwsShutdown } from '../../jobs/ews-access.ts';

describe('the EWS deadlines', () => {
  it('counts whole days left until 1 April 2027 00:00 UTC, a part of a day as a day', () => {
    expect(new Date(EWS_SHUTDOWN_AT).toISOString()).toBe('2027-04-01T00:00:00.000Z');
    expect(ewsDaysLeft(Date.parse('2026-12-07T12:00:00Z'))).toBe(115);
    expect(ewsDaysLeft(Date.parse('2027-03-31T23:59:59Z'))).toBe(1);
    expect(ewsDaysLeft(EWS_SHUTDOWN_AT)).toBe(0);
    expect(ewsDaysLeft(Date.parse('2027-06-01T00:00:00Z'))).toBe(0);
  });

  it('is shut down from 1 April 2027 on, not a millisecond before', () => {
    expect(isAfterEwsShutdown(EWS_SHUTDOWN_AT - 1)).toBe(false);
    expect(isAfterEwsShutdown(EWS_SHUTDOWN_AT)).toBe(true);
  });
});
