import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Browser and server suites start real processes; running files in parallel on a 2-core
    // machine makes timings flaky without saving much.
    fileParallelism: false,
    pool: 'forks',
  },
});
