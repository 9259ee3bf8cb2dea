import { Redis } from 'ioredis';
import { AuthConfigError } from '../errors.js';
import { MemoryStore } from '../stores/memory-store.js';
import { type RedisClient, RedisStore } from '../stores/redis-store.js';
import type { SessionStore } from '../stores/session-store.js';
import type { AuthOptions, ResolvedOptions } from './options.js';
import { warnOnce } from './validate.js';

function isRedisClient(value: unknown): value is RedisClient {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as RedisClient).defineCommand === 'function' &&
    typeof (value as RedisClient).zscore === 'function'
  );
}

/**
 * The `redis` option, checked and turned into the instance's session store once, at start-up:
 * an injected ioredis client, a client of our own from a URL, or (left out) the memory store.
 */
export function createStore(redis: AuthOptions['redis'], options: ResolvedOptions): SessionStore {
  const storeOptions = { keyPrefix: options.keyPrefix, timeout: options.storeTimeout };
  if (redis === undefined) {
    if (process.env.NODE_ENV === 'production') {
      warnOnce(
        'KOA_JWT_REDIS_MEMORY_STORE',
        'koa-jwt-redis: no `redis` option, so sessions live in process memory: they are lost on restart and not shared between processes. Pass `redis` in production.',
      );
    }
    return new MemoryStore();
  }
  if (typeof redis === 'string') {
    let client: Redis;
    try {
      client = new Redis(redis, {
        // Fail fast and bounded: one retry per command, a command timeout, reconnect forever.
        commandTimeout: options.storeTimeout,
        maxRetriesPerRequest: 1,
        enableAutoPipelining: true,
        retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
      });
    } catch (cause) {
      throw new AuthConfigError(
        'redis',
        'is not a valid Redis URL (e.g. redis://127.0.0.1:6379/0)',
        { cause },
      );
    }
    // Errors surface per request as 503s; without a listener ioredis would log each reconnect.
    client.on('error', () => {});
    return new RedisStore(client, { ...storeOptions, ownsClient: true });
  }
  if (isRedisClient(redis)) return new RedisStore(redis, { ...storeOptions, ownsClient: false });
  throw new AuthConfigError(
    'redis',
    'must be an ioredis Redis or Cluster instance, or a redis:// URL',
  );
}
