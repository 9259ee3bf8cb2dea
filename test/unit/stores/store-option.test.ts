import { describe, expect, it } from 'vitest';
import {
  AuthConfigError,
  createAuth,
  memoryStore,
  postgresStore,
  redisStore,
  type SessionStore,
} from '../../../src/index.js';
import { SECRET } from '../../helpers/forge.js';
import { harnessRedisUrl, uniquePrefix } from '../../helpers/auth.js';
import { pgUrl } from '../../helpers/postgres.js';

const option = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (error) {
    if (error instanceof AuthConfigError) return error.option;
    throw error;
  }
  return undefined;
};

describe('createAuth({ store })', () => {
  it('takes any SessionStore and closes it with the instance', async () => {
    let closed = false;
    const inner = memoryStore();
    const store: SessionStore = { ...bind(inner), close: async () => void (closed = true) };
    const auth = createAuth({ secret: SECRET, store });
    const pair = await auth.generateTokens({ id: 7 });
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
    await auth.close();
    expect(closed).toBe(true);
  });

  it('closes once: a second close() returns the first one’s promise (a URL’s Redis client, a PostgreSQL pool)', async () => {
    let closes = 0;
    const inner = memoryStore();
    const store: SessionStore = { ...bind(inner), close: async () => void closes++ };
    const auth = createAuth({ secret: SECRET, store });
    const first = auth.close();
    expect(auth.close()).toBe(first);
    await first;
    await auth.close();
    expect(closes).toBe(1);
    for (const made of [
      createAuth({ secret: SECRET, redis: harnessRedisUrl(), keyPrefix: uniquePrefix() }),
      createAuth({ secret: SECRET, store: postgresStore(pgUrl()) }),
    ]) {
      await made.generateTokens({ id: 'closes-once' }).catch(() => {});
      await made.close();
      await expect(made.close()).resolves.toBeUndefined();
    }
  });

  it('after close(), the memory store answers 503 store_unavailable, as a Redis client the library closed does', async () => {
    const auth = createAuth({ secret: SECRET, store: memoryStore() });
    const pair = await auth.generateTokens({ id: 'after-close' });
    await auth.close();
    for (const call of [
      () => auth.generateTokens({ id: 'after-close' }),
      () => auth.refreshTokens(pair.refresh_token),
      () => auth.checkRefreshToken(pair.refresh_token),
      () => auth.listSessions('after-close'),
      () => auth.ping(),
    ])
      await expect(call()).rejects.toMatchObject({ code: 'store_unavailable', status: 503 });
  });

  it('refuses a store that is not one, a store with `redis`, and the Redis-only options beside it', () => {
    expect(option(() => createAuth({ secret: SECRET, store: {} as SessionStore }))).toBe('store');
    expect(
      option(() => createAuth({ secret: SECRET, store: memoryStore(), redis: 'redis://x' })),
    ).toBe('store');
    expect(
      option(() => createAuth({ secret: SECRET, store: memoryStore(), keyPrefix: 'a:' })),
    ).toBe('keyPrefix');
    expect(
      option(() => createAuth({ secret: SECRET, store: memoryStore(), storeTimeout: 500 })),
    ).toBe('storeTimeout');
  });

  it('strategy and sessionIdleTtl are checked at start-up', () => {
    expect(
      option(() => createAuth({ secret: SECRET, strategy: 'database' as unknown as 'session' })),
    ).toBe('strategy');
    expect(option(() => createAuth({ secret: SECRET, sessionIdleTtl: 0 }))).toBe('sessionIdleTtl');
    const auth = createAuth({ secret: SECRET, strategy: 'session' });
    expect(auth.strategies.defaultStrategyName).toBe('session');
    return auth.close();
  });

  it('redisStore checks its options at once', () => {
    expect(option(() => redisStore(42 as unknown as string))).toBe('redis');
    expect(option(() => redisStore('redis://127.0.0.1:1', { keyPrefix: 'a{b' }))).toBe('keyPrefix');
    expect(option(() => redisStore('redis://127.0.0.1:1', { timeout: 5 }))).toBe('timeout');
  });

  it('masterLease: Sentinel only, with the store `redis` makes, an interval of 50 to 10000 ms, and no other key', () => {
    const sentinel = { sentinels: [{ host: '127.0.0.1', port: 1 }], name: 'mymaster' };
    // Checked before any connection is made.
    for (const [masterLease, refused] of [
      [{ interval: 10 }, 'masterLease.interval'],
      [{ interval: 20_000 }, 'masterLease.interval'],
      [{ interval: 1.5 }, 'masterLease.interval'],
      [{ ttl: 100 }, 'masterLease.ttl'],
      ['yes', 'masterLease'],
      [null, 'masterLease'],
    ] as const)
      expect(
        option(() => redisStore(sentinel, { masterLease: masterLease as unknown as boolean })),
        JSON.stringify(masterLease),
      ).toBe(refused);
    // It asks the sentinels: a single node has none.
    expect(option(() => redisStore('redis://127.0.0.1:1', { masterLease: true }))).toBe(
      'masterLease',
    );
    expect(option(() => createAuth({ secret: SECRET, masterLease: true }))).toBe('masterLease');
    expect(
      option(() => createAuth({ secret: SECRET, store: memoryStore(), masterLease: true })),
    ).toBe('masterLease');
    // Off is off everywhere.
    return createAuth({ secret: SECRET, masterLease: false }).close();
  });
});

function bind(store: SessionStore): SessionStore {
  return {
    create: store.create.bind(store),
    rotate: store.rotate.bind(store),
    get: store.get.bind(store),
    isLive: store.isLive.bind(store),
    revoke: store.revoke.bind(store),
    revokeAll: store.revokeAll.bind(store),
    list: store.list.bind(store),
    close: store.close.bind(store),
  };
}
