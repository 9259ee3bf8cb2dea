import type pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import {
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

function onRedis(name: string, makeClient: () => Client): void {
  let client: Client;
  beforeAll(() => {
    client = makeClient();
    cleanups.push(() => client.quit().catch(() => client.disconnect()));
  });
  const prefix = uniquePrefix();
  const open = (): SessionStore => redisStore(client, { keyPrefix: prefix });
  backends.push({ name, open, prunes: false });
  authOnStoreContract(name, (options = {}) =>
    createAuth({ secret: SECRET, store: open(), refreshGracePeriod: 0, ...options }),
  );
}

if (onCluster()) {
  onRedis('Redis Cluster', () => clusterClient());
} else {
  backends.push({ name: 'memory', open: memoryStore, prunes: true });
  authOnStoreContract('memory', (options = {}) =>
    createAuth({ secret: SECRET, store: memoryStore(), refreshGracePeriod: 0, ...options }),
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
  const open = (): SessionStore => postgresStore(pool, { schema, pruneInterval: 0 });
  backends.push({ name: 'PostgreSQL', open, prunes: true });
  authOnStoreContract('PostgreSQL', (options = {}) =>
    createAuth({ secret: SECRET, store: open(), refreshGracePeriod: 0, ...options }),
  );
}

for (const backend of backends) storeContract(backend);
