import { AuthConfigError } from '../errors.js';
import { checkedStore } from '../stores/checked-store.js';
import { MemoryStore } from '../stores/memory-store.js';
import { redisStore } from '../stores/redis-store.js';
import { resolveRecordFormat } from '../stores/redis-store-config.js';
import type { NewSession, SessionStore } from '../stores/session-store.js';
import type { AuthOptions, ResolvedOptions } from './options.js';
import { warnOnce } from './validate.js';

const STORE_METHODS = ['create', 'rotate', 'get', 'isLive', 'revoke', 'revokeAll', 'list', 'close'];

function isSessionStore(value: unknown): value is SessionStore {
  return (
    value !== null &&
    typeof value === 'object' &&
    STORE_METHODS.every((m) => typeof (value as Record<string, unknown>)[m] === 'function')
  );
}

function warnMemory(): void {
  if (process.env.NODE_ENV === 'production') {
    warnOnce(
      'KOA_JWT_REDIS_MEMORY_STORE',
      'sessions live in process memory: they are lost on restart and not shared between processes. Pass `redis` or `store` in production.',
    );
  }
}

/**
 * The memory store an instance gets when given neither `store` nor `redis`, under a default
 * strategy that keeps no sessions (`jwt`): nothing is kept in memory until another strategy
 * records a session, so the production warning waits for that.
 */
class UnusedMemoryStore extends MemoryStore {
  override create(userId: string, s: NewSession, maxSessions: number): Promise<void> {
    warnMemory();
    return super.create(userId, s, maxSessions);
  }
}

/**
 * The `store` and `redis` options, checked and turned into the instance's session store once, at
 * start-up: the given store, a Redis store (an injected client or one of our own from a URL), or
 * (neither given) the memory store.
 */
export function createStore(given: AuthOptions, options: ResolvedOptions): SessionStore {
  if (given.store !== undefined) {
    if (given.redis !== undefined)
      throw new AuthConfigError('store', 'give `store` or `redis`, not both');
    for (const name of [
      'keyPrefix',
      'storeTimeout',
      'waitForReplicas',
      'sessionCache',
      'masterLease',
      'keyBuckets',
      'recordFormat',
    ] as const) {
      if (given[name] !== undefined) {
        throw new AuthConfigError(
          name,
          'configures the store `redis` creates; with `store`, give it to the store factory instead (e.g. redisStore(client, { keyPrefix, timeout, waitForReplicas }))',
        );
      }
    }
    if (!isSessionStore(given.store)) {
      throw new AuthConfigError(
        'store',
        `must implement the SessionStore interface (${STORE_METHODS.join(', ')}), e.g. redisStore(client), postgresStore(pool) or memoryStore()`,
      );
    }
    if (given.store instanceof MemoryStore) warnMemory();
    return checkedStore(given.store);
  }
  if (given.redis === undefined) {
    if (options.waitForReplicas !== undefined && options.waitForReplicas > 0)
      throw new AuthConfigError(
        'waitForReplicas',
        'confirms writes to Redis replicas, so it needs the `redis` option',
      );
    if (given.sessionCache !== undefined && given.sessionCache !== false)
      throw new AuthConfigError('sessionCache', 'needs the Redis store: give `redis` too');
    if (given.masterLease !== undefined && given.masterLease !== false)
      throw new AuthConfigError(
        'masterLease',
        'needs the Redis store on Sentinel: give `redis` too',
      );
    if (given.keyBuckets !== undefined && given.keyBuckets !== 0)
      throw new AuthConfigError(
        'keyBuckets',
        'lays out Redis keys, so it needs the `redis` option',
      );
    if (resolveRecordFormat(given.recordFormat) !== 'binary')
      throw new AuthConfigError(
        'recordFormat',
        'lays out Redis records, so it needs the `redis` option',
      );
    if (options.strategy === 'jwt') return new UnusedMemoryStore();
    warnMemory();
    return new MemoryStore();
  }
  return redisStore(given.redis, {
    keyPrefix: options.keyPrefix,
    timeout: options.storeTimeout,
    waitForReplicas: options.waitForReplicas,
    sessionCache: given.sessionCache,
    masterLease: given.masterLease,
    keyBuckets: given.keyBuckets,
    recordFormat: given.recordFormat,
  });
}
