import { afterEach, describe, expect, it } from 'vitest';
import { timerQueueName } from '../../../jobs/deployment.ts';
import { startHarness, withQueue, type Harness } from '../../support/bot-harness.ts';

describe('bot start: the certificate watch scheduler', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('two bot instances leave one job scheduler on the timer queue, with CERT_WATCH_CRON in UTC', async () => {
    h = await startHarness({ instances: 2, env: { CERT_WATCH_CRON: '15 5 * * 1-5' } });
    const schedulers = await withQueue(h, timerQueueName(h.config.deployment), (q) => q.getJobSchedulers());
    expect(schedulers).toHaveLength(1);
    expect(schedulers[0]).toMatchObject({ key: 'cert-watch', name: 'cert-watch', pattern: '15 5 * * 1-5', tz: 'UTC' });
  });
});
