import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration and end-to-end tests share one real Redis; each test uses its own key prefix.
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
