import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    alias: { 'koa-jwt-redis': fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      // Everything, against one redis-server.
      { extends: true, test: { name: 'redis', include: ['test/**/*.test.ts'] } },
      // The integration suites that drive the store, again against a real 3-master Redis Cluster
      // (global-setup starts it for this project). Suites that start their own redis-server
      // (outage, faults-under-load, redis-operations), connect by URL (keys) or test no store (package, cli, jwks,
      // verifier, fuzzing) run once, above; cluster.test.ts starts its own cluster.
      {
        extends: true,
        test: {
          name: 'cluster',
          include: [
            'test/integration/sessions.test.ts',
            'test/integration/strategies.test.ts',
            'test/integration/concurrency.test.ts',
            'test/integration/events.test.ts',
            'test/integration/router.test.ts',
            'test/integration/cookies.test.ts',
            'test/integration/session-cache.test.ts',
            'test/contract/session-store.test.ts',
          ],
        },
      },
    ],
  },
});
