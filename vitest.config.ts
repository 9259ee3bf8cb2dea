import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Suites that kill, freeze or fail over real servers and assert time bounds (storeTimeout +
 * 250 ms, 10 ms cache coherence): they run in a second pass, one file at a time (`npm run
 * test:serial`), so another file's CPU load cannot stretch their clocks on a 2-core machine.
 */
const TIMING = [
  'test/integration/faults-under-load.test.ts',
  'test/integration/sentinel-failover.test.ts',
  'test/integration/cluster-failover.test.ts',
  'test/integration/store-timeout.test.ts',
  'test/integration/outage.test.ts',
  'test/integration/session-cache.test.ts',
  'test/integration/session-cache-reshard.test.ts',
  'test/integration/postgres.test.ts',
];

/** The suites that send the auth routes bodies, run again on each older koa-body major. */
const KOA_BODY_SUITES = [
  'test/integration/majors.test.ts',
  'test/integration/request-bodies.test.ts',
  'test/integration/router.test.ts',
  'test/integration/mounted-routes.test.ts',
  'test/integration/cookies.test.ts',
];

export default defineConfig({
  resolve: {
    alias: { 'koa-jwt-redis': fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/summary-reporter.ts', './test/watchdog-reporter.ts'],
    // The majors the `redis` and `cluster` projects run on: what `npm install` gives a user today.
    provide: { majors: { ioredis: 6, koa: 3, koaBody: 8 } },
    projects: [
      // Everything, against one redis-server.
      {
        extends: true,
        test: {
          name: 'redis',
          include: ['test/**/*.test.ts'],
          exclude: [...TIMING, '**/node_modules/**'],
        },
      },
      // The timing suites, against one redis-server (or servers they start), in the serial pass.
      { extends: true, test: { name: 'timing', include: TIMING } },
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
            'test/contract/store-model.test.ts',
            'test/integration/lifecycle.test.ts',
          ],
        },
      },
      // The other supported majors, ioredis 5 and Koa 2 (the floor of the peer range), from dev
      // dependency aliases: every `ioredis`/`koa` import in src, tests and helpers loads them, and
      // majors.test.ts proves it. Runs the suites that drive the client and Koa hardest.
      {
        extends: true,
        resolve: { alias: { ioredis: 'ioredis5', koa: 'koa2' } },
        test: {
          name: 'ioredis5-koa2',
          provide: { majors: { ioredis: 5, koa: 2, koaBody: 8 } },
          include: [
            'test/integration/majors.test.ts',
            'test/integration/sessions.test.ts',
            'test/integration/strategies.test.ts',
            'test/integration/router.test.ts',
            'test/integration/cookies.test.ts',
            'test/integration/outage.test.ts',
            'test/integration/cluster.test.ts',
            'test/integration/request-bodies.test.ts',
            'test/contract/session-store.test.ts',
          ],
        },
      },
      // The older koa-body majors of the peer range, from dev dependency aliases (the library
      // require()s koa-body, which no vite alias reaches: the setup file maps Node's resolution).
      // koa-body 6 keeps the unparsed body elsewhere and turns a falsy JSON body into {}.
      ...[6, 7].map((koaBody) => ({
        extends: true as const,
        test: {
          name: `koa-body${koaBody}`,
          provide: { majors: { ioredis: 6, koa: 3, koaBody } },
          setupFiles: ['test/helpers/koa-body-major.ts'],
          include: KOA_BODY_SUITES,
        },
      })),
    ],
  },
});
