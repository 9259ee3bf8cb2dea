import type pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import {
  type AuthOptions,
  createAuth,
  memoryStore,
  postgresStore,
  redisStore,
  type SessionStore,
} from '../../src/index.js';
import {
  clusterClient,
  harnessRedisUrl,
  onCluster,
  redisClient,
  uniquePrefix,
} from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';
import { dropSchema, testPool, uniqueSchema } from '../helpers/postgres.js';
import { authOnStoreContract, type ContractBackend, storeContract } from './store-contract.js';
import { sessionStrategyContract } from './session-strategy-contract.js';

/*
 * One contract, every store: memory, Redis and PostgreSQL in the `redis` project, the Redis
 * Cluster in the `cluster` project. PostgreSQL works in a schema of its own, dropped at the end.
 */

type Client = ReturnType<typeof redisClient>;
const backends: ContractBackend[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/**
 * Every suite for one backend: the store contract, and the library's strategies on that store.
 * `timeResolution`: what the store keeps expiries and last uses to (keptTimes), in ms;
 * `runsLate`: whether its commands can run after the app gave up on them (ContractBackend).
 */
function register(
  name: string,
  open: () => SessionStore,
  prunes: boolean,
  timeResolution?: number,
  runsLate = true,
): void {
  backends.push({ name, open, prunes, timeResolution, runsLate });
  const make = (options: Partial<AuthOptions> = {}) =>
    createAuth({ secret: SECRET, store: open(), ...options });
  authOnStoreContract(name, (options = {}) => make({ refreshGracePeriod: 0, ...options }));
  sessionStrategyContract(name, make, open, timeResolution);
}

/**
 * The Redis store in both layouts: a hash per user, and shared hashes (`keyBuckets`), here just
 * one, so that every user of the suite shares it and every operation must keep them apart; each
 * with the default binary records and the opt-in text ones.
 */
function onRedis(name: string, makeClient: () => Client): void {
  let client: Client;
  beforeAll(() => {
    client = makeClient();
    cleanups.push(() => client.quit().catch(() => client.disconnect()));
  });
  // The default binary records keep expiries and last uses to the second.
  const prefix = uniquePrefix();
  register(name, () => redisStore(client, { keyPrefix: prefix }), false, 1000);
  const shared = uniquePrefix();
  register(
    `${name}, shared keys`,
    () => redisStore(client, { keyPrefix: shared, keyBuckets: 1 }),
    false,
    1000,
  );
  // The opt-in text records (earlier versions' only kind), in both layouts: times to the ms.
  const text = uniquePrefix();
  register(
    `${name}, text records`,
    () => redisStore(client, { keyPrefix: text, recordFormat: 'text' }),
    false,
  );
  const sharedText = uniquePrefix();
  register(
    `${name}, shared keys, text records`,
    () => redisStore(client, { keyPrefix: sharedText, keyBuckets: 1, recordFormat: 'text' }),
    false,
  );
}

if (onCluster()) {
  onRedis('Redis Cluster', () => clusterClient());
} else {
  // One memory store shared by every auth of this file, so the suite can read what the strategy wrote.
  const shared = memoryStore();
  cleanups.push(() => shared.close());
  // The memory store runs each call when it is made: nothing of it runs late.
  register(
    'memory',
    () => ({ ...bindStore(shared), close: async () => {} }),
    true,
    undefined,
    false,
  );
  onRedis('Redis', () => redisClient(harnessRedisUrl()));

  let pool: pg.Pool;
  const schema = uniqueSchema();
  beforeAll(async () => {
    pool = testPool();
    cleanups.push(async () => {
      await dropSchema(pool, schema);
      await pool.end();
    });
    await postgresStore(pool, { schema, pruneInterval: 0 }).migrate();
  });
  register('PostgreSQL', () => postgresStore(pool, { schema, pruneInterval: 0 }), true);
}

for (const backend of backends) storeContract(backend);

function bindStore(store: SessionStore): SessionStore {
  return {
    create: store.create.bind(store),
    rotate: store.rotate.bind(store),
    get: store.get.bind(store),
    isLive: store.isLive.bind(store),
    revoke: store.revoke.bind(store),
    revokeAll: store.revokeAll.bind(store),
    list: store.list.bind(store),
    prune: store.prune!.bind(store),
    close: store.close.bind(store),
  };
}
