import type { ChainableCommander, Redis } from 'ioredis';
import { AuthConfigError } from '../errors.js';
import { wholeNumber } from '../config/validate.js';
import { bounded } from './bounded.js';
import { CREATE_SESSION, REVOKE_ALL, REVOKE_SESSION, ROTATE_SESSION } from './lua.js';
import { connectRedis, type RedisClient, type RedisOption } from './redis-connection.js';
import {
  compactUuid,
  coreExpiresAt,
  META_CHUNKS,
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

export { isRedisClient, type RedisClient } from './redis-connection.js';

const SCRIPTS = {
  kjrCreateSession: CREATE_SESSION,
  kjrRotateSession: ROTATE_SESSION,
  kjrRevokeSession: REVOKE_SESSION,
  kjrRevokeAll: REVOKE_ALL,
} as const;
type ScriptName = keyof typeof SCRIPTS;
type ScriptArgs = (string | number)[];

/** The commands `defineCommand` adds (prefixed so they cannot clash with the app's own); each returns a number. */
type ScriptedClient = Record<ScriptName, (key: string, ...argv: ScriptArgs) => Promise<number>>;
type ScriptedPipeline = ChainableCommander &
  Record<ScriptName, (key: string, ...argv: ScriptArgs) => ChainableCommander>;

/** Session ids this library issues are base64url; anything else cannot name a family (nor its `:n` fields). */
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const META_FIELDS = Array.from({ length: META_CHUNKS }, (_, i) => `:${i}`);

/** Connections for confirmed writes (see `writers`), besides the one for reads. */
const WRITER_CONNECTIONS = 4;

const ROTATION: Record<number, RotationResult> = {
  0: 'missing',
  1: 'rotated',
  2: 'superseded',
  3: 'reused',
};

export interface RedisStoreOptions {
  keyPrefix: string;
  /** Every call settles within this many ms, whatever the client's own settings. */
  timeout: number;
  /** Quit the client on close (only when this library created it). */
  ownsClient: boolean;
  /**
   * Replicas that must have a write (Redis `WAIT`) before it counts as done; 0 answers as soon as
   * the master has it.
   */
  waitForReplicas: number;
}

/** A write the master took but too few replicas confirmed in time: a failover could undo it. */
export class ReplicationError extends Error {
  constructor(wanted: number, got: number, ms: number) {
    super(`the write reached ${got} of the ${wanted} replicas required within ${ms} ms`);
    this.name = 'ReplicationError';
  }
}

/**
 * Redis store. Data model: one hash per user, `<prefix>{u:<id>}` (one hash tag, so one Cluster slot):
 * - field `<sid>`: "jti|previous jti|rotatedAt|createdAt|expiresAt" (base-36 ms), at most 64 bytes
 * - fields `<sid>:0` … `<sid>:5`: "ip|user agent" in 64-character chunks, only when known
 * The key expires with the user's last session; scripts prune expired families on every write.
 */
export class RedisStore implements SessionStore {
  private readonly client: RedisClient & ScriptedClient;
  /**
   * Where confirmed writes go: connections of their own, because `WAIT` blocks the connection it
   * runs on until the replicas answer. Session checks must not queue behind it, and with several
   * connections one write's confirmation does not hold up the next one's.
   */
  private readonly writers: { client: RedisClient; busy: number }[] = [];
  /** Reads may skip our own timer: see {@link readBounded}. */
  private readonly readsTimeOut: boolean;

  constructor(
    client: RedisClient,
    private readonly options: RedisStoreOptions,
  ) {
    const define = (c: RedisClient): void => {
      for (const [name, lua] of Object.entries(SCRIPTS))
        c.defineCommand(name, { numberOfKeys: 1, lua });
    };
    define(client);
    this.client = client as RedisClient & ScriptedClient;
    if (options.ownsClient) this.keepConnecting(client);
    for (let i = 0; options.waitForReplicas > 0 && i < WRITER_CONNECTIONS; i++) {
      const writer = client.duplicate();
      writer.on('error', () => {});
      define(writer);
      this.keepConnecting(writer);
      this.writers.push({ client: writer, busy: 0 });
    }
    const nodeOptions = client.isCluster ? undefined : (client as Redis).options;
    this.readsTimeOut =
      nodeOptions !== undefined &&
      !nodeOptions.enableAutoPipelining &&
      typeof nodeOptions.commandTimeout === 'number' &&
      nodeOptions.commandTimeout <= options.timeout;
  }

  /**
   * Reconnects a client of ours that gave up. ioredis ends a Sentinel client for good when a
   * failover interrupts its reconnection (the sentinels' `+switch-master`, or a `READONLY`,
   * arriving while it is still connecting): every later command would fail with "Connection is
   * closed". A session store must come back by itself.
   */
  private keepConnecting(client: RedisClient): void {
    client.on('end', () => {
      if (this.closing) return;
      setTimeout(() => {
        if (!this.closing && client.status === 'end') client.connect().catch(() => {});
      }, 100).unref();
    });
  }

  private closing = false;

  private key(userId: string): string {
    // encodeURIComponent escapes { and }, so a user id can never break out of its hash tag.
    return `${this.options.keyPrefix}{u:${encodeURIComponent(userId)}}`;
  }

  /**
   * A read, bounded in time. A single-node client without auto-pipelining whose own
   * `commandTimeout` is no longer than ours already bounds a plain command (ioredis arms it
   * before the command is written or queued offline), so it passes through untouched: no second
   * timer per session check. An auto-pipelined command can wait for its batch first, and a
   * Cluster command can be redirected and retried, so those race a timer of ours.
   */
  private readBounded<T>(command: Promise<T>): Promise<T> {
    return this.readsTimeOut ? command : this.bounded(command);
  }

  /** Races the command against `timeout`: the bound holds whatever the client does. */
  private bounded<T>(command: Promise<T>): Promise<T> {
    return bounded(command, this.options.timeout, 'Redis');
  }

  /**
   * Runs a write script. With `waitForReplicas`, a `WAIT` follows it in the same round trip, on
   * the same connection (so, on a Cluster, on the node that ran the script): the write only
   * counts once that many replicas have it, and a failover cannot undo it.
   */
  private async write(name: ScriptName, key: string, ...args: ScriptArgs): Promise<number> {
    const wanted = this.options.waitForReplicas;
    if (this.writers.length === 0) return this.bounded(this.client[name](key, ...args));
    const ms = this.options.timeout;
    const writer = this.writers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const pipeline = writer.client.pipeline() as ScriptedPipeline;
    pipeline[name](key, ...args).wait(wanted, ms);
    // Busy until Redis answers, even past our timeout: the connection is blocked until then.
    writer.busy++;
    const exec = pipeline.exec();
    exec.then(
      () => writer.busy--,
      () => writer.busy--,
    );
    const results = await this.bounded(exec);
    const [script, wait] = results ?? [];
    if (!script || !wait) throw new Error('the write pipeline returned no results');
    if (script[0]) throw script[0];
    if (wait[0]) throw wait[0];
    const got = Number(wait[1]);
    if (!(got >= wanted)) throw new ReplicationError(wanted, got, ms);
    return Number(script[1]);
  }

  async create(userId: string, s: NewSession, maxSessions: number): Promise<void> {
    const core = packCore({
      jti: s.jti,
      previousJti: '',
      rotatedAt: 0,
      createdAt: s.now,
      expiresAt: s.expiresAt,
    });
    await this.write(
      'kjrCreateSession',
      this.key(userId),
      s.sessionId,
      core,
      s.expiresAt,
      s.now,
      maxSessions,
      ...packMeta(s),
    );
  }

  async rotate(userId: string, r: Rotation): Promise<RotationResult> {
    if (!SESSION_ID.test(r.sessionId)) return 'missing';
    const code = await this.write(
      'kjrRotateSession',
      this.key(userId),
      r.sessionId,
      compactUuid(r.oldJti),
      compactUuid(r.newJti),
      r.now,
      r.expiresAt,
      r.graceMs,
      r.now.toString(36),
      r.expiresAt.toString(36),
    );
    return ROTATION[code] ?? 'missing';
  }

  async get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const [core, ...meta] = await this.readBounded(
      this.client.hmget(this.key(userId), sessionId, ...META_FIELDS.map((n) => `${sessionId}${n}`)),
    );
    const record = core ? unpackSession(sessionId, core, meta.join('')) : undefined;
    return record && record.expiresAt > now ? record : undefined;
  }

  async isLive(userId: string, sessionId: string, now: number): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return false;
    const core = await this.readBounded(this.client.hget(this.key(userId), sessionId));
    return core !== null && coreExpiresAt(core) > now;
  }

  async revoke(userId: string, sessionId: string): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return false;
    return (await this.write('kjrRevokeSession', this.key(userId), sessionId, Date.now())) > 0;
  }

  async revokeAll(userId: string, now: number): Promise<number> {
    return this.write('kjrRevokeAll', this.key(userId), now);
  }

  async list(userId: string, now: number): Promise<SessionRecord[]> {
    const all = await this.readBounded(this.client.hgetall(this.key(userId)));
    const sessions: SessionRecord[] = [];
    for (const [field, core] of Object.entries(all)) {
      if (field.includes(':')) continue;
      const record = unpackSession(
        field,
        core,
        META_FIELDS.map((n) => all[`${field}${n}`] ?? '').join(''),
      );
      if (record && record.expiresAt > now) sessions.push(record);
    }
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  async close(): Promise<void> {
    this.closing = true;
    const owned: RedisClient[] = this.options.ownsClient ? [this.client] : [];
    for (const writer of this.writers) owned.push(writer.client);
    await Promise.all(
      owned.map(async (client) => {
        try {
          await client.quit();
        } catch {
          client.disconnect();
        }
      }),
    );
  }
}

/** Options of {@link redisStore}. */
export interface RedisStoreConfig {
  /** Prefix of every key the store writes. @default 'auth:' */
  keyPrefix?: string;
  /** Longest wait for Redis, in ms; past it the request gets 503 `store_unavailable`. @default 1000 */
  timeout?: number;
  /**
   * Replicas that must confirm (Redis `WAIT`, within `timeout`) each write that starts, rotates
   * or ends a session; unconfirmed, the request answers 503. @default 1 with Sentinel, else 0
   */
  waitForReplicas?: number;
}

/**
 * The Redis session store: one hash per user, atomic Lua scripts, keys that expire with their
 * last session. Give an ioredis `Redis` or `Cluster` (yours: the store never closes it), a
 * redis:// or rediss:// URL, or connection options (`{ host, port, tls }`, `{ sentinels, name }`,
 * `{ cluster: [nodes] }`): then the store opens a client set up for failovers and `auth.close()`
 * quits it. `createAuth({ redis })` is the short form of `createAuth({ store: redisStore(redis) })`.
 * @example
 * const auth = createAuth({ secret, store: redisStore(new Redis(process.env.REDIS_URL!), { keyPrefix: 'myapp:' }) });
 */
export function redisStore(redis: RedisOption, config: RedisStoreConfig = {}): SessionStore {
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
  const wanted =
    config.waitForReplicas === undefined
      ? undefined
      : wholeNumber('waitForReplicas', config.waitForReplicas, 0, 16);
  const { client, owned, topology } = connectRedis(redis, timeout);
  return new RedisStore(client, {
    keyPrefix,
    timeout,
    ownsClient: owned,
    // Sentinel promotes a replica on failover: only writes a replica has are safe from it.
    waitForReplicas: wanted ?? (topology === 'sentinel' ? 1 : 0),
  });
}
