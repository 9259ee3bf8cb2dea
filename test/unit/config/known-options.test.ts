import { afterEach, describe, expect, it } from 'vitest';
import {
  type Auth,
  AuthConfigError,
  createAuth,
  koaJwtStrategy,
  memoryStore,
  postgresStore,
  redisStore,
} from '../../../src/index.js';

let auth: Auth | undefined;
afterEach(async () => {
  await auth?.close();
  auth = undefined;
});

describe('every factory refuses options it does not know, naming them as written', () => {
  it('createAuth, auth.routes, auth.jwks, the middlewares, the stores and koaJwtStrategy', () => {
    auth = createAuth({ secret: 'known-options-test-secret-32-bytes!' });
    const a = auth;
    const cases: [() => unknown, string][] = [
      [
        () =>
          createAuth({ secret: 'known-options-test-secret-32-bytes!', acessTokenTtl: 60 } as never),
        'acessTokenTtl',
      ],
      [
        () =>
          createAuth({
            secret: 'known-options-test-secret-32-bytes!',
            cookies: { secur: false },
          } as never),
        'cookies.secur',
      ],
      [() => a.routes({ login: () => null, prefx: '/x' } as never), 'routes.prefx'],
      [() => a.jwks({ maxage: 5 } as never), 'jwks.maxage'],
      [() => a.requireAuth({ checksession: false } as never), 'requireAuth.checksession'],
      [() => a.getData({ scrf: true } as never), 'getData.scrf'],
      // Checked before connecting. A misspelt waitForReplicas would drop the failover guarantee
      // without a word, a misspelt isRevoked accept every legacy token until the window ends.
      [
        () => redisStore('redis://127.0.0.1:1', { waitForReplica: 1 } as never),
        'redisStore.waitForReplica',
      ],
      [
        () => postgresStore('postgres://127.0.0.1:1/x', { tabel: 'sessions' } as never),
        'postgresStore.tabel',
      ],
      [
        () =>
          koaJwtStrategy({
            secret: 'known-options-test-secret-32-bytes!',
            until: new Date(),
            isRevokd: () => true,
          } as never),
        'koaJwtStrategy.isRevokd',
      ],
      // A prefix differing from another only in a lone surrogate would share its keys.
      [() => redisStore('redis://127.0.0.1:1', { keyPrefix: 'a\uDBFF:' }), 'keyPrefix'],
      // A wrong value of a known option is named the way a misspelt one is.
      [() => a.requireAuth({ checkSession: 'no' } as never), 'requireAuth.checkSession'],
      [() => a.getData({ csrf: 1 } as never), 'getData.csrf'],
      // A strategy the instance does not have, found as the middleware is made.
      [() => a.requireAuth({ strategy: 'sesion' }), 'requireAuth.strategy'],
      [() => a.getData({ strategy: 1 } as never), 'getData.strategy'],
      [() => postgresStore('postgres://127.0.0.1:1/x', { timeout: 5 }), 'postgresStore.timeout'],
      [() => postgresStore('postgres://127.0.0.1:1/x', { table: 'a-b' }), 'postgresStore.table'],
      [
        () => postgresStore('postgres://127.0.0.1:1/x', { pruneInterval: -1 }),
        'postgresStore.pruneInterval',
      ],
      [() => postgresStore('mysql://127.0.0.1:1/x'), 'postgresStore.connection'],
      [() => postgresStore('postgres://127.0.0.1:1/x', null as never), 'postgresStore options'],
      // memoryStore takes none: a ttl or size given to it would do nothing.
      [() => (memoryStore as (o: unknown) => unknown)({ ttl: 60 }), 'memoryStore options'],
      // Mistakes a configuration probe made, each named where it was made.
      [
        () =>
          createAuth({
            secret: 'known-options-test-secret-32-bytes!',
            tokenDelivery: 'cookie',
            csrf: { allowedOrigins: ['https://*.example.com'] },
          }),
        'csrf.allowedOrigins[0]',
      ],
      [() => a.strategies.register('kj', koaJwtStrategy as never), 'koaJwtStrategy'],
      [
        () =>
          createAuth({
            secret: 'known-options-test-secret-32-bytes!',
            redis: { host: '127.0.0.1', port: '6379' as never },
          }),
        'redis.port',
      ],
    ];
    for (const [make, option] of cases) {
      let thrown: unknown;
      try {
        make();
      } catch (error) {
        thrown = error;
      }
      expect(thrown, option).toBeInstanceOf(AuthConfigError);
      expect((thrown as AuthConfigError).option).toBe(option);
    }
  });
});
