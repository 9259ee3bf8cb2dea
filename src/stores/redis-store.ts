import { type Cluster, Redis } from 'ioredis';
import { AuthConfigError } from '../errors.js';
import { wholeNumber } from '../config/validate.js';
import { bounded } from './bounded.js';
import {
  CREATE_ARGS,
  CREATE_SESSION,
  REVOKE_ALL,
  REVOKE_ALL_ARGS,
  REVOKE_SESSION,
  REVOKE_SESSION_ARGS,
  ROTATE_ARGS,
  ROTATE_RESULTS,
  ROTATE_SESSION,
  scriptArgs,
} from './lua.js';
import {
  type ResolvedSessionCache,
  SessionCache,
  type SessionCacheOptions,
} from './session-cache.js';
import {
  compactUuid,
  coreExpiresAt,
  isMetaField,
  metaFields,
  packCore,
  packMeta,
  unpackSession,
} from './record-codec.js';
import type {
  NewSession,
  Rotation,
  RotationResult,
  SessionRecord,
  SessionStore,
} from './session-store.js';

export type RedisClient = Redis | Cluster;

/** The commands `defineCommand` adds; prefixed so they cannot clash with the app's own. */
interface ScriptedClient {
  kjrCreateSession(h: string, ...argv: (string | number)[]): Promise<number>;
  kjrRotateSession(h: string, ...argv: (string | number)[]): Promise<number>;
  kjrRevokeSession(h: string, ...argv: (string | number)[]): Promise<number>;
  kjrRevokeAll(h: string, ...argv: (string | number)[]): Promise<number>;
}

/** Session ids this library issues are base64url; anything else cannot name a family (nor its `:n` fields). */
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const ROTATION = new Map<number, RotationResult>(
  Object.entries(ROTATE_RESULTS).map(([result, code]) => [code, result as RotationResult]),
);

export interface RedisStoreOptions {
  keyPrefix: string;
  /** Every call settles within this many ms, whatever the client's own settings. */
  timeout: number;
  /** Quit the client on close (only when this library created it). */
  ownsClient: boolean;
  /** Keep session liveness in process, kept coherent by Redis (off when undefined). */
  sessionCache?: ResolvedSessionCache | undefined;
}

/**
 * Redis store. Data model: one hash per user, `<prefix>{u:<id>}` (one hash tag, so one Cluster
 * slot), with a core-record field per family and its metadata chunks beside it, laid out by the
 * record codec (record-codec.ts). The key expires with the user's last session; scripts prune
 * expired families on every write.
 */
export class RedisStore implements SessionStore {
  private readonly client: RedisClient & ScriptedClient;
  private readonly clientTimesOut: boolean;
  private readonly cache: SessionCache | undefined;
  /** The client's own `keyPrefix`, which Redis sees in front of ours (in invalidations too). */
  private readonly clientPrefix: string;

  constructor(
    client: RedisClient,
    private readonly options: RedisStoreOptions,
  ) {
    for (const [name, lua] of [
      ['kjrCreateSession', CREATE_SESSION],
      ['kjrRotateSession', ROTATE_SESSION],
      ['kjrRevokeSession', REVOKE_SESSION],
      ['kjrRevokeAll', REVOKE_ALL],
    ] as const) {
      client.defineCommand(name, { numberOfKeys: 1, lua });
    }
    this.client = client as RedisClient & ScriptedClient;
    const commandTimeout = client.isCluster ? undefined : (client as Redis).options.commandTimeout;
    this.clientTimesOut = typeof commandTimeout === 'number' && commandTimeout <= options.timeout;
    this.clientPrefix = client.options.keyPrefix ?? '';
    this.cache =
      options.sessionCache === undefined
        ? undefined
        : new SessionCache(client, this.clientPrefix + options.keyPrefix, options.sessionCache);
  }

  /** The key as Redis names it, which is how invalidations name it. */
  private cacheKey(userId: string): string {
    return this.clientPrefix + this.key(userId);
  }

  /** A write: once it settles, this instance forgets the user's cached sessions at once. */
  private written<T>(userId: string, write: Promise<T>): Promise<T> {
    const cache = this.cache;
    if (cache === undefined) return write;
    const key = this.cacheKey(userId);
    return write.finally(() => cache.forget(key));
  }

  private key(userId: string): string {
    // encodeURIComponent escapes { and }, so a user id can never break out of its hash tag.
    return `${this.options.keyPrefix}{u:${encodeURIComponent(userId)}}`;
  }

  /**
   * Bounds a command in time. A single-node client whose own `commandTimeout` is no longer than
   * ours already does (ioredis arms it before the command is written or queued offline), so its
   * commands pass through untouched: no second timer per request. Otherwise (a Cluster, or a
   * client without commandTimeout) the command races a timer of ours.
   */
  private bounded<T>(command: Promise<T>): Promise<T> {
    if (this.clientTimesOut) return command;
    return bounded(command, this.options.timeout, 'Redis');
  }

  async create(userId: string, s: NewSession, maxSessions: number): Promise<void> {
    const core = packCore({
      jti: s.jti,
      previousJti: '',
      rotatedAt: 0,
      createdAt: s.now,
      expiresAt: s.expiresAt,
    });
    await this.written(
      userId,
      this.bounded(
        this.client.kjrCreateSession(
          this.key(userId),
          ...scriptArgs(CREATE_ARGS, {
            sessionId: s.sessionId,
            core,
            expiresAt: s.expiresAt,
            now: s.now,
            maxSessions,
          }),
          ...packMeta(s),
        ),
      ),
    );
  }

  async rotate(userId: string, r: Rotation): Promise<RotationResult> {
    if (!SESSION_ID.test(r.sessionId)) return 'missing';
    const code = await this.written(
      userId,
      this.bounded(
        this.client.kjrRotateSession(
          this.key(userId),
          ...scriptArgs(ROTATE_ARGS, {
            sessionId: r.sessionId,
            oldJti: compactUuid(r.oldJti),
            newJti: compactUuid(r.newJti),
            now: r.now,
            expiresAt: r.expiresAt,
            graceMs: r.graceMs,
            now36: r.now.toString(36),
            expiresAt36: r.expiresAt.toString(36),
          }),
        ),
      ),
    );
    return ROTATION.get(code) ?? 'missing';
  }

  async get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const [core, ...meta] = await this.bounded(
      this.client.hmget(this.key(userId), sessionId, ...metaFields(sessionId)),
    );
    const record = core ? unpackSession(sessionId, core, meta.join('')) : undefined;
    return record && record.expiresAt > now ? record : undefined;
  }

  async isLive(userId: string, sessionId: string, now: number): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return false;
    const cache = this.cache;
    if (cache === undefined) {
      const core = await this.bounded(this.client.hget(this.key(userId), sessionId));
      return core !== null && coreExpiresAt(core) > now;
    }
    const key = this.cacheKey(userId);
    const known = cache.get(key, sessionId, now);
    if (known !== undefined) return known > now;
    const ticket = cache.begin(key, now);
    let expiresAt: number | undefined;
    try {
      const core = await this.bounded(this.client.hget(this.key(userId), sessionId));
      expiresAt = core === null ? 0 : coreExpiresAt(core);
      return expiresAt > now;
    } finally {
      if (ticket !== undefined) cache.finish(ticket, sessionId, expiresAt);
    }
  }

  /** The cached answer of `isLive`, when the session cache has one it can trust; else undefined. */
  cachedLiveness(userId: string, sessionId: string, now: number): boolean | undefined {
    const known = this.cache?.get(this.cacheKey(userId), sessionId, now);
    return known === undefined ? undefined : known > now;
  }

  async revoke(userId: string, sessionId: string): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return false;
    const write = this.client.kjrRevokeSession(
      this.key(userId),
      ...scriptArgs(REVOKE_SESSION_ARGS, { sessionId, now: Date.now() }),
    );
    return (await this.written(userId, this.bounded(write))) > 0;
  }

  async revokeAll(userId: string, now: number): Promise<number> {
    const write = this.client.kjrRevokeAll(
      this.key(userId),
      ...scriptArgs(REVOKE_ALL_ARGS, { now }),
    );
    return this.written(userId, this.bounded(write));
  }

  async list(userId: string, now: number): Promise<SessionRecord[]> {
    const all = await this.bounded(this.client.hgetall(this.key(userId)));
    const sessions: SessionRecord[] = [];
    for (const [field, core] of Object.entries(all)) {
      if (isMetaField(field)) continue;
      const record = unpackSession(
        field,
        core,
        metaFields(field)
          .map((name) => all[name] ?? '')
          .join(''),
      );
      if (record && record.expiresAt > now) sessions.push(record);
    }
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  async ping(): Promise<void> {
    // Any user's key may live on any master, so a cluster is ready only when every master answers.
    const nodes = this.client.isCluster ? (this.client as Cluster).nodes('master') : [this.client];
    if (nodes.length === 0) throw new Error('the cluster client knows no master node yet');
    await Promise.all(nodes.map((node) => this.bounded(node.ping())));
  }

  async close(): Promise<void> {
    this.cache?.close();
    if (!this.options.ownsClient) return;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

/** Options of {@link redisStore}. */
export interface RedisStoreConfig {
  /** Prefix of every key the store writes. @default 'auth:' */
  keyPrefix?: string;
  /** Longest wait for Redis, in ms; past it the request gets 503 `store_unavailable`. @default 1000 */
  timeout?: number;
  /**
   * Opt-in: remember session liveness in this process, so `requireAuth()` answers repeat
   * requests without a round trip, while Redis itself tells every process of each change
   * (`CLIENT TRACKING … BCAST`, Redis 6 or later): a revocation anywhere is seen everywhere
   * within milliseconds, and a lost invalidation connection drops the cache. `true` for the
   * defaults. @default false
   */
  sessionCache?: boolean | SessionCacheOptions;
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
  for (const name of Object.keys(given)) {
    if (name !== 'maxEntries' && name !== 'maxStaleness')
      throw new AuthConfigError(
        `sessionCache.${name}`,
        'is not an option; known: maxEntries, maxStaleness',
      );
  }
  return {
    maxEntries: wholeNumber('sessionCache.maxEntries', given.maxEntries ?? 100_000, 1, 10_000_000),
    maxStaleness: wholeNumber('sessionCache.maxStaleness', given.maxStaleness ?? 1000, 10, 60_000),
  };
}

export function isRedisClient(value: unknown): value is RedisClient {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as RedisClient).defineCommand === 'function' &&
    typeof (value as RedisClient).zscore === 'function'
  );
}

/**
 * The Redis session store: one hash per user, atomic Lua scripts, keys that expire with their
 * last session. Give an ioredis `Redis` or `Cluster` (yours: the store never closes it) or a
 * redis:// URL (the store opens the client and `auth.close()` quits it).
 * `createAuth({ redis })` is the short form of `createAuth({ store: redisStore(redis) })`.
 * @example
 * const auth = createAuth({ secret, store: redisStore(new Redis(process.env.REDIS_URL!), { keyPrefix: 'myapp:' }) });
 */
export function redisStore(
  redis: RedisClient | string,
  config: RedisStoreConfig = {},
): SessionStore {
  const fail = (option: string, message: string) => new AuthConfigError(option, message);
  if (config === null || typeof config !== 'object')
    throw fail('redisStore options', 'must be an object like { keyPrefix, timeout }');
  const keyPrefix = config.keyPrefix ?? 'auth:';
  if (typeof keyPrefix !== 'string' || /[{}\s]/.test(keyPrefix)) {
    throw fail(
      'keyPrefix',
      'must be a string without braces or spaces (braces would break Cluster hash tags)',
    );
  }
  const timeout = wholeNumber('timeout', config.timeout ?? 1000, 10, 60_000);
  const sessionCache = resolveSessionCache(config.sessionCache);
  if (typeof redis === 'string') {
    let client: Redis;
    try {
      client = new Redis(redis, {
        // Fail fast and bounded: one retry per command, a command timeout, reconnect forever.
        commandTimeout: timeout,
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
    return new RedisStore(client, { keyPrefix, timeout, ownsClient: true, sessionCache });
  }
  if (isRedisClient(redis))
    return new RedisStore(redis, { keyPrefix, timeout, ownsClient: false, sessionCache });
  throw fail('redis', 'must be an ioredis Redis or Cluster instance, or a redis:// URL');
}
