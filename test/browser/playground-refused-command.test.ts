import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobQueueName } from '../../jobs/deployment.ts';
import { playgroundBot, playgroundChats, playgroundUsers } from '../../scripts/playground-users.ts';
import { openConversation, sendMessage, startPlaygroundStack, type PlaygroundStack } from './playground-harness.ts';

/**
 * A person without rights types a command in the Agents Playground (the demo's
 * `npm start -- --as uma`): the bot says who may run commands, and nothing is queued or read.
 */
const stranger = playgroundUsers.find((u) => u.role === 'none');
const channel = `${playgroundChats.teamName} - ${playgroundChats.channelName}`;

let stack: PlaygroundStack | undefined;

beforeAll(async () => {
  if (!stranger) throw new Error('the Playground config lacks a user without rights');
  stack = await startPlaygroundStack({ typing: stranger });
}, 90_000);

afterAll(async () => {
  await stack?.close();
}, 30_000);

describe('a command from someone who is not an operator, in the Playground', () => {
  it('is refused with who may run commands, and changes nothing', async () => {
    if (!stack) throw new Error('the stack did not start');
    const { page, proxy, redis, prefix, sim } = stack;
    await page.goto(proxy.url);
    await openConversation(page, channel);
    await sendMessage(page, 'approve mailboxes', { mention: playgroundBot.name });
    await page.getByText(/Only the operators listed in SETUP_OPERATORS/).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: '/tmp/setup-playground-4-refused-command.png', fullPage: true });

    expect(await page.getByRole('button', { name: 'Approve', exact: true }).count()).toBe(0);
    const queue = new Queue(jobQueueName('default'), { connection: redis, prefix });
    try {
      const counts = await queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
    } finally {
      await queue.close();
    }
    expect(sim.stats.requests).toBe(0);
  }, 120_000);
});
