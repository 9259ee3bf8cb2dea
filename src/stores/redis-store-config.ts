import { AuthConfigError } from '../errors.js';
import { keyPrefixOption, onlyKnown, wholeNumber } from '../config/validate.js';
import {
  type MasterLeaseOptions,
  type ResolvedMasterLease,
  resolveMasterLease,
} from './master-lease.js';
import { isRedisClient } from './redis-connection.js';
import type { ResolvedSessionCache, SessionCacheOptions } from './session-cache.js';

/** Options of {@link redisStore}. */
export interface RedisStoreConfig {
  /** Prefix of every key the store writes. @default 'auth:' */
  keyPrefix?: string | undefined;
  /** Longest wait for Redis, in ms; past it the request gets 503 `store_unavailable`. @default 1000 */
  timeout?: number | undefined;
  /**
   * Replicas that must confirm (Redis `WAIT`, within `timeout`) each write that starts, rotates
   * or ends a session; unconfirmed, the request answers 503. @default 1 with Sentinel, and on a
   * Cluster for the writes of each shard whose master has a replica; else 0
   */
  waitForReplicas?: number | undefined;
  /**
   * Opt-in: remember session liveness in this process, so `requireAuth()` answers repeat
   * requests without a round trip, while Redis itself tells every process of each change
   * (`CLIENT TRACKING … BCAST`, Redis 6 or later): a revocation anywhere is seen everywhere
   * within milliseconds, and a lost invalidation connection drops the cache. `true` for the
   * defaults. @default false
   */
  sessionCache?: boolean | SessionCacheOptions | undefined;
  /**
   * Opt-in, with Sentinel: session checks and other reads trust the master only while enough
   * sentinels vouch for it (`SENTINEL MASTER`, every `interval` ms), so a master cut off with
   * this app stops being read before the sentinels can promote another one: a session ended on
   * the other side of a split is never accepted here; reads answer 503 instead, until the app
   * reaches the master the sentinels name. Costs 503s whenever fewer than `sentinels - quorum +
   * 1` sentinels answer. `true` for the defaults. @default false
   */
  masterLease?: boolean | MasterLeaseOptions | undefined;
  /**
   * Opt-in compact layout: keep every user's sessions in one of this many shared hashes instead
   * of a hash per user. A Redis key costs about 130 bytes on its own, so with one or two sessions
   * per user this saves over half the memory (about 85 bytes per session instead of 200; 170
   * instead of 260 with `recordFormat: 'text'`). Size
   * it so a hash holds about 16 sessions (live sessions / 16): fuller hashes save a little more
   * but make each check and login read a longer hash, and past 512 fields (Redis's default
   * `hash-max-listpack-entries`) a hash leaves its compact encoding. In the session cache a write
   * drops the cached answers of every user of its hash. Changing it (or turning it on or off)
   * moves every user to another key: everyone logs in again. 0 is one hash per user. @default 0
   */
  keyBuckets?: number | undefined;
  /**
   * How new sessions are recorded. `'binary'`: one field of 33 bytes for a login with an IPv4 ip
   * and a browser the codec knows (37 once refreshed), 197 B of Redis per one-session user (84
   * with `keyBuckets`); it keeps expiries and rotation times to the second (README, "Record
   * formats") and costs Redis about 1.5 µs more CPU a login and 2.5 µs a refresh (the scripts
   * pack the record; README, "Performance").
   * `'text'`: the record of versions before 0.2, which cannot read a binary one: set it while
   * such instances still run (a rolling upgrade), 261 B per one-session user. Records of both
   * kinds are always read, and a family keeps its kind when rotated. @default 'binary'
   */
  recordFormat?: 'binary' | 'text' | undefined;
}

/** `recordFormat` as given to `redisStore`/`createAuth`, checked: `'binary'` when absent. */
export function resolveRecordFormat(value: unknown): 'binary' | 'text' {
  if (value === undefined) return 'binary';
  if (value !== 'binary' && value !== 'text')
    throw new AuthConfigError('recordFormat', "must be 'binary' or 'text'");
  return value;
}

/** `sessionCache` as given to `redisStore`/`createAuth`, checked. */
export function resolveSessionCache(value: unknown): ResolvedSessionCache | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { maxEntries: 100_000, maxStaleness: 1000 };
  if (value === null || typeof value !== 'object')
    throw new AuthConfigError(
      'sessionCache',
      'must be true, false or { maxEntries, maxStaleness }',
    );
  const given = value as Record<string, unknown>;
  onlyKnown('sessionCache', given, ['maxEntries', 'maxStaleness']);
  return {
    maxEntries: wholeNumber('sessionCache.maxEntries', given.maxEntries ?? 100_000, 1, 10_000_000),
    maxStaleness: wholeNumber('sessionCache.maxStaleness', given.maxStaleness ?? 1000, 10, 60_000),
  };
}

/** The options of redisStore(): any other name is a typo, refused. */
const REDIS_STORE_OPTION_NAMES = [
  'keyPrefix',
  'timeout',
  'waitForReplicas',
  'sessionCache',
  'masterLease',
  'keyBuckets',
  'recordFormat',
] as const satisfies readonly (keyof RedisStoreConfig)[];

/** A redisStore's options, checked once, with their defaults; `wanted` is undefined when not given (the topology decides). */
export interface ResolvedRedisStoreConfig {
  keyPrefix: string;
  timeout: number;
  sessionCache: ResolvedSessionCache | undefined;
  masterLease: ResolvedMasterLease | undefined;
  keyBuckets: number;
  recordFormat: 'binary' | 'text';
  wanted: number | undefined;
}

/** Checks redisStore()'s options: an AuthConfigError names the first one wrong. */
export function resolveRedisStoreConfig(config: RedisStoreConfig): ResolvedRedisStoreConfig {
  const fail = (message: string) => new AuthConfigError('redisStore options', message);
  if (config === null || typeof config !== 'object')
    throw fail('must be an object like { keyPrefix, timeout }');
  if (isRedisClient(config))
    throw fail(
      'is a Redis client: the client comes first, redisStore(client, { keyPrefix, timeout })',
    );
  // A misspelt `waitForReplicas` would drop the failover guarantee without a word.
  onlyKnown('redisStore', config, REDIS_STORE_OPTION_NAMES);
  return {
    keyPrefix: keyPrefixOption(config.keyPrefix ?? 'auth:'),
    timeout: wholeNumber('timeout', config.timeout ?? 1000, 10, 60_000),
    sessionCache: resolveSessionCache(config.sessionCache),
    keyBuckets: wholeNumber('keyBuckets', config.keyBuckets ?? 0, 0, 2 ** 24),
    recordFormat: resolveRecordFormat(config.recordFormat),
    wanted:
      config.waitForReplicas === undefined
        ? undefined
        : wholeNumber('waitForReplicas', config.waitForReplicas, 0, 16),
    masterLease: resolveMasterLease(config.masterLease),
  };
}
