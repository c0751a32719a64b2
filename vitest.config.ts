import { defineConfig } from 'vitest/config';

/**
 * Three projects, chosen by the test file's name (`npm run test:unit` runs the first; `vitest run` runs all three once):
 *   unit         every other test file: no Redis, no browser (local in-process HTTP stand-ins and child processes are fine)
 *   integration  *.redis.test.ts (real Redis), *.sim.test.ts (the agent against the simulators, real Redis)
 *   e2e          *.e2e.test.ts (the bot driven the way Teams does), test/integration/** (bot + agent + simulators),
 *                test/browser/** (Agents Playground in a real browser)
 * A test is named after the file it tests (bot/runs/run-store.ts → test/bot/runs/run-store.redis.test.ts).
 */
const e2e = ['test/**/*.e2e.test.ts', 'test/integration/**/*.test.ts', 'test/browser/**/*.test.ts'];
const integration = [
  'test/**/*.redis.test.ts',
  'test/**/*.sim.test.ts',
];

export default defineConfig({
  test: {
    // Integration and end-to-end tests share one real Redis; each test uses its own key prefix.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [...e2e, ...integration] } },
      { extends: true, test: { name: 'integration', include: integration, exclude: e2e } },
      { extends: true, test: { name: 'e2e', include: e2e } },
    ],
  },
});
