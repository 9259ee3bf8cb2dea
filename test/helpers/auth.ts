import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setImmediate, setTimeout } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import { expect, inject } from 'vitest';
import {
  type Auth,
  AuthError,
  type AuthOptions,
  createAuth,
  type SessionStore,
} from '../../src/index.js';
import { decodeSegment, SECRET } from './forge.js';

/** A key prefix of its own per test, so tests sharing the harness Redis never see each other's keys. */
export const uniquePrefix = (): string => `t${randomUUID().slice(0, 8)}:`;

export const harnessRedisUrl = (): string => inject('redisUrl');

/** Whether this run's integration tests go to a Redis Cluster (the `cluster` vitest project). */
export const onCluster = (): boolean => inject('redisBackend') === 'cluster';

export type TestRedis = Redis | Cluster;

const CLIENT_OPTIONS = {
  maxRetriesPerRequest: 1,
  commandTimeout: 1000,
  retryStrategy: (n: number) => Math.min(n * 100, 1000),
};

/** An ioredis Cluster client for the harness cluster, with the settings the README recommends. */
export function clusterClient(ports: number[] = inject('clusterPorts')): Cluster {
  const client = new Cluster(
    ports.map((port) => ({ host: '127.0.0.1', port })),
    {
      redisOptions: CLIENT_OPTIONS,
      clusterRetryStrategy: (n) => Math.min(n * 100, 1000),
    },
  );
  client.on('error', () => {});
  return client;
}

/** The client settings the README recommends for an injected ioredis client (a Cluster on the cluster backend). */
export function redisClient(url?: string): TestRedis {
  if (url === undefined && onCluster()) return clusterClient();
  const client = new Redis(url ?? harnessRedisUrl(), CLIENT_OPTIONS);
  client.on('error', () => {});
  return client;
}

/**
 * An Auth on the harness Redis: from a URL (the instance owns and closes its client), or on the
 * cluster backend an injected Cluster client that `close()` also disconnects.
 */
export function testAuth(options: Partial<AuthOptions> = {}): Auth {
  if (!onCluster())
    return createAuth({
      secret: SECRET,
      redis: harnessRedisUrl(),
      keyPrefix: uniquePrefix(),
      ...options,
    });
  const client = clusterClient();
  const auth = createAuth({ secret: SECRET, redis: client, keyPrefix: uniquePrefix(), ...options });
  const close = auth.close.bind(auth);
  auth.close = async () => {
    await close();
    await client.quit().catch(() => client.disconnect());
  };
  return auth;
}

/**
 * Every key matching `pattern`: KEYS on a single Redis; on a Cluster, SCAN on every master,
 * since KEYS would only ask the one node it happens to be routed to.
 */
export async function allKeys(client: TestRedis, pattern: string): Promise<string[]> {
  if (!(client instanceof Cluster)) return client.keys(pattern);
  const found: string[] = [];
  for (const node of client.nodes('master')) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
  return found;
}

/** All keys under a prefix, with their TTLs in ms. */
export async function keysWithTtl(client: TestRedis, prefix: string): Promise<Map<string, number>> {
  const keys = await allKeys(client, `${prefix}*`);
  const out = new Map<string, number>();
  for (const key of keys) out.set(key, await client.pttl(key));
  return out;
}

/** The session check `requireAuth()` runs: true when live, false when refused as token_revoked. */
export async function passesSessionCheck(auth: Auth, token: string): Promise<boolean> {
  try {
    await auth.strategies.get('redis').readToken(token, { checkSession: true });
    return true;
  } catch (error) {
    if (error instanceof AuthError && error.code === 'token_revoked') return false;
    throw error;
  }
}

/**
 * Until the instance refuses `token`, revoked by another (its session cache told, or its next
 * read from Redis): within 1 s, however the revocation reached it.
 */
export async function refusedSoon(instance: { auth: Auth }, token: string): Promise<void> {
  const deadline = performance.now() + 1000;
  while (await passesSessionCheck(instance.auth, token)) {
    expect(performance.now(), 'still accepted 1 s after the revocation').toBeLessThan(deadline);
    await setImmediate();
  }
}

/**
 * Checks the token on an instance with the session cache until its store answers from the cache
 * (the invalidation feed may still be setting up); every check on the way must pass.
 */
export async function untilCached(
  instance: { auth: Auth; store: SessionStore },
  token: string,
): Promise<void> {
  const { sub, sid } = decodeSegment(token, 1) as { sub: string; sid: string };
  for (let i = 0; i < 500; i++) {
    expect(await passesSessionCheck(instance.auth, token)).toBe(true);
    if (instance.store.cachedLiveness!(sub, sid, Date.now()) === true) return;
    await setTimeout(10);
  }
  throw new Error('the session cache never answered');
}
