import { describe, expect, it } from 'vitest';
import { isCronPattern, loadBotConfig } from '../../../bot/bot-config.ts';

const key = 'k'.repeat(32);

function configError(env: Record<string, string>): string {
  try {
    loadBotConfig({ JOB_SIGNING_KEY: key, ...env });
  } catch (error) {
    expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
    return (error as Error).message;
  }
  throw new Error('the configuration was accepted');
}

describe('certificate watch configuration', () => {
  it('defaults to every day at 07:00 UTC and 30,14,7,1 days', () => {
    const c = loadBotConfig({ JOB_SIGNING_KEY: key });
    expect(c.certWatchCron).toBe('0 7 * * *');
    expect(c.certWatchThresholds).toEqual([30, 14, 7, 1]);
    expect(Object.isFrozen(c.certWatchThresholds)).toBe(true);
  });

  it('de-duplicates and sorts the thresholds descending', () => {
    const c = loadBotConfig({ JOB_SIGNING_KEY: key, CERT_WATCH_THRESHOLDS: ' 7, 30 ,1,7,60 ' });
    expect(c.certWatchThresholds).toEqual([60, 30, 7, 1]);
  });

  it('stops the start naming CERT_WATCH_THRESHOLDS when a threshold is not a positive whole number', () => {
    for (const bad of ['0', '30,-1', '30,abc', '30,,7', '7.5', '30;14', '99999']) {
      expect(configError({ CERT_WATCH_THRESHOLDS: bad })).toContain('CERT_WATCH_THRESHOLDS');
    }
  });

  it('stops the start naming CERT_WATCH_CRON when the pattern is not a cron pattern', () => {
    for (const bad of ['daily', '0 7 * *', '99 7 * * *', '0 24 * * *', '0 7 0 * *', '0 7 * 13 *', '0 7 * * 8', '0 7 * * * * *', '*/0 * * * *', '5-1 * * * *']) {
      expect(configError({ CERT_WATCH_CRON: bad }), bad).toContain('CERT_WATCH_CRON');
    }
  });

  it('accepts the usual cron forms (and normalises spacing)', () => {
    for (const good of ['0 7 * * *', '30 6 * * 1-5', '*/15 * * * *', '0 0 1,15 * *', '0 7 * * MON', '0 9 L * *', '0 0 7 * * *', '0 7 * JAN-MAR 0']) {
      expect(isCronPattern(good), good).toBe(true);
    }
    expect(loadBotConfig({ JOB_SIGNING_KEY: key, CERT_WATCH_CRON: '0  6   * * 1-5' }).certWatchCron).toBe('0 6 * * 1-5');
  });
});
