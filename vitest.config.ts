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
    reporters: ['default'],
    projects: [
      // Everything, against one redis-server.
      { extends: true, test: { name: 'redis', include: ['test/**/*.test.ts'] } },
      // The integration tests that go through the store again, against a real 3-master Redis
      // Cluster (global-setup starts it for this project). outage.test.ts starts its own servers
      // and cluster.test.ts its own cluster, so they run once, in the project above.
      {
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/integration/**/*.test.ts'],
          exclude: ['test/integration/outage.test.ts', 'test/integration/package.test.ts', 'test/integration/cluster*.test.ts'],
        },
      },
    ],
  },
});
