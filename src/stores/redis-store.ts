import type { Cluster, Redis } from 'ioredis';
import { AuthConfigError } from '../errors.js';
import { warnOnce } from '../config/validate.js';
import { bounded } from './bounded.js';
import { trustStore } from './checked-store.js';
import { MasterLease, type ResolvedMasterLease } from './master-lease.js';
import { TurnBatcher } from './turn-batcher.js';
import { ConnectionServer } from './server-identity.js';
import { KeyLayout, type Place } from './key-layout.js';
import {
  connectRedis,
  type IoRedisClient,
  quietFailoverDetector,
  type RedisOption,
} from './redis-connection.js';
import { type BatchedName, batched, defineScripts, type Read } from './redis-scripts.js';
import { ScriptWrites } from './script-writes.js';
import { type RedisStoreConfig, resolveRedisStoreConfig } from './redis-store-config.js';
import {
  CREATE_FIELDS,
  REVOKE_ALL_ARGS,
  REVOKE_SESSION_ARGS,
  ROTATE_FIELDS,
  ROTATE_RESULTS,
} from './lua.js';
import { packArgs, scriptArgs } from './script-args.js';
import { type LivenessCell, type ResolvedSessionCache, SessionCache } from './session-cache.js';
import {
  base36,
  compactUuid,
  coreExpiresAt,
  isMetaField,
  metaFields,
  packCore,
  packMeta,
  unpackSession,
  binaryRecord,
  uuidBytes,
  keptExpiresAt,
} from './record-codec.js';
import type {
  Holding,
  NewSession,
  Rotation,
  RotationResult,
  SessionRecord,
  SessionStore,
} from './session-store.js';

export { isRedisClient, type RedisClient } from './redis-connection.js';

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
  /** With Sentinel: reads trust the master only while the sentinels vouch for it (off when undefined). */
  masterLease?: ResolvedMasterLease | undefined;
  /**
   * Replicas that must have a write (Redis `WAIT`) before it counts as done; 0 answers as soon as
   * the master has it. `'replicated'` (a Cluster's default): 1 for the writes of each shard
   * whose master has a replica, else 0 (see watchReplicas, cluster-replicas.ts).
   */
  waitForReplicas: number | 'replicated';
  /** The shared layout's number of hashes; 0 for a hash per user. */
  keyBuckets: number;
  /** How new families are recorded (see RedisStoreConfig.recordFormat). */
  recordFormat: 'binary' | 'text';
}

/** Metadata chunks as read (absent ones too), joined: each is whole characters, so each decodes alone. */
const joinChunks = (chunks: (Buffer | null | undefined)[]): string => {
  let joined = '';
  for (const chunk of chunks) if (chunk) joined += chunk.toString();
  return joined;
};

/**
 * Redis store. Data model: one hash per user, `<prefix>{u:<id>}` (one hash tag, so one Cluster
 * slot; key-layout.ts), with a core-record field per family (binary by default, with the ip and device label
 * as codes when it can; text with `recordFormat: 'text'` or for a jti that is no UUID) and its metadata chunks beside it when the record
 * does not carry them, laid out by the record codec (record-codec.ts). The key expires with the user's last session; a write that
 * finds the hash large, and its earliest expiry passed, prunes its expired families (lua.ts,
 * SCAN_FIELDS).
 *
 * The shared layout (`keyBuckets`: N) puts each user in one of N hashes, `<prefix>{b:<n>}`
 * (KeyLayout), the user's fields led by an owner tag. The hash expires with its latest session;
 * logins prune every owner's expired families.
 */
export class RedisStore implements SessionStore {
  private readonly client: IoRedisClient;
  /** How the write scripts reach Redis: batched, bounded, confirmed by replicas (script-writes.ts). */
  private readonly writes: ScriptWrites;
  /** Reads may skip our own timer: see {@link readBounded}. */
  private readonly readsTimeOut: boolean;
  private closing = false;
  /** Redis refused the database the options select: our connections stay closed (keepConnecting). */
  private databaseRefused = false;
  private readonly cache: SessionCache | undefined;
  /** With `masterLease`: whether the master's answers may be trusted now (see MasterLease). */
  private readonly lease: MasterLease | undefined;
  /**
   * Which server the client's connection is on (not on a Cluster): the lease's master, and the
   * server the session cache's feed must be on.
   */
  private readonly server: ConnectionServer | undefined;
  /** The client's own `keyPrefix`, which Redis sees in front of ours (in invalidations too). */
  private readonly clientPrefix: string;
  /** Which hash holds a user's sessions (see KeyLayout). */
  private readonly layout: KeyLayout;
  /**
   * Session checks, one command per kind per turn of the event loop (see TurnBatcher). Single
   * node only: one batch's keys may lie in different Cluster slots, so a Cluster sends each call
   * as its own command.
   */
  private readonly cores: TurnBatcher<Read, Buffer | null> | undefined;
  /** Whole-record reads (`get`, the session strategy's check), batched the same way. */
  private readonly records: TurnBatcher<Read, (Buffer | null)[]> | undefined;
  /** Binary records keep expiries and rotation times to the second (record-codec.ts). */
  readonly timeResolution: number;

  constructor(
    client: IoRedisClient,
    private readonly options: RedisStoreOptions,
  ) {
    trustStore(this);
    defineScripts(client);
    this.client = quietFailoverDetector(client);
    this.timeResolution = options.recordFormat === 'binary' ? 1000 : 1;
    if (options.ownsClient) this.keepConnecting(client);
    this.writes = new ScriptWrites(this.client, options, (writer) => this.keepConnecting(writer));
    const nodeOptions = client.isCluster ? undefined : (client as Redis).options;
    this.readsTimeOut =
      nodeOptions !== undefined &&
      !nodeOptions.enableAutoPipelining &&
      typeof nodeOptions.commandTimeout === 'number' &&
      nodeOptions.commandTimeout <= options.timeout;
    this.clientPrefix = client.options.keyPrefix ?? '';
    this.layout = new KeyLayout(options.keyPrefix, options.keyBuckets, this.clientPrefix);
    if (!client.isCluster) {
      // A batched read script takes every key, then every field, in the same order; its
      // Buffer-answering form, named once here.
      const readMany = <R>(name: BatchedName) => {
        const command = `${name}Buffer`;
        return (reads: Read[]) =>
          this.readBounded(
            batched(client, command, reads.length, [
              ...reads.map((read) => read.key),
              ...reads.map((read) => read.field),
            ]),
          ) as Promise<R[]>;
      };
      this.cores = new TurnBatcher(
        ({ key, field }) => this.readCoreAlone(key, field),
        readMany<Buffer | null>('kjrReadCores'),
      );
      this.records = new TurnBatcher(
        ({ key, field }) => this.readRecordAlone(key, field),
        readMany<(Buffer | null)[]>('kjrReadRecords'),
      );
    }
    const server =
      client.isCluster || (options.masterLease === undefined && options.sessionCache === undefined)
        ? undefined
        : new ConnectionServer(client as Redis, options.timeout);
    this.server = server;
    this.lease =
      options.masterLease === undefined
        ? undefined
        : new MasterLease(client as Redis, server!, options.masterLease, options.timeout);
    const lease = this.lease;
    this.cache =
      options.sessionCache === undefined
        ? undefined
        : new SessionCache(
            client,
            // Only the session hashes: a write to any other key under the prefix (the app's
            // own, a rate limiter's) must not drop the cache.
            this.layout.redisHead,
            options.sessionCache,
            (redisKey) => this.layout.entryOfKey(redisKey),
            lease && (() => lease.holds()),
            server,
          );
  }

  /** A write: once it settles, this instance forgets the cached sessions of its hash at once. */
  private written<T>(place: Place, write: Promise<T>): Promise<T> {
    const cache = this.cache;
    if (cache === undefined) return write;
    return write.finally(() => cache.forget(place.entry));
  }

  /**
   * Reconnects a client of ours that gave up. ioredis ends a Sentinel client for good when a
   * failover interrupts its reconnection (the sentinels' `+switch-master`, or a `READONLY`,
   * arriving while it is still connecting): every later command would fail with "Connection is
   * closed". A session store must come back by itself.
   */
  private keepConnecting(client: IoRedisClient): void {
    client.on('error', (error: unknown) => {
      // A database the server does not have (db: 99, redis://…/99 where Redis has 16): ioredis
      // reports the refused SELECT and goes on, on database 0, which other data may share. Each
      // connection of ours (the client, the confirmed writers) is closed instead, and stays
      // closed: every call answers 503, and the warning says why.
      if (error instanceof Error && /DB index is out of range/i.test(error.message)) {
        this.databaseRefused = true;
        warnOnce(
          'KOA_JWT_REDIS_DB_OUT_OF_RANGE',
          `Redis refused the database the \`redis\` option selects (${error.message}): the library closed its connections rather than write sessions to database 0. Give a database number the server has (its \`databases\` setting, 16 by default).`,
        );
        client.disconnect();
      }
    });
    client.on('end', () => {
      if (this.closing || this.databaseRefused) return;
      setTimeout(() => {
        if (!this.closing && !this.databaseRefused && client.status === 'end')
          client.connect().catch(() => {});
      }, 100).unref();
    });
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

  async create(userId: string, s: NewSession, maxSessions: number): Promise<void> {
    // The binary record (the default) when the jti is a UUID, else the text one; the text path
    // builds nothing it does not send.
    const binary =
      this.options.recordFormat === 'binary' ? binaryRecord({ ...s, createdAt: s.now }) : undefined;
    const core =
      binary?.core ??
      packCore({
        jti: s.jti,
        previousJti: '',
        rotatedAt: 0,
        createdAt: s.now,
        expiresAt: s.expiresAt,
      });
    const meta = binary === undefined ? packMeta(s) : binary.meta;
    // A binary record keeps whole seconds: the key's expiry and PRUNE_AT take what it keeps.
    const expiresAt = binary === undefined ? Math.floor(s.expiresAt) : keptExpiresAt(s.expiresAt);
    const place = this.layout.place(userId);
    await this.written(
      place,
      this.writes.write(
        'kjrCreateSession',
        place.key,
        packArgs(CREATE_FIELDS, {
          owner: place.owner,
          sessionId: place.owner + s.sessionId,
          core,
          expiresAt,
          expiresAtText: String(expiresAt),
          now: s.now,
          maxSessions,
        }),
        ...meta,
      ),
    );
  }

  async rotate(userId: string, r: Rotation): Promise<RotationResult> {
    if (!SESSION_ID.test(r.sessionId)) return 'missing';
    const place = this.layout.place(userId);
    const oldJti = compactUuid(r.oldJti);
    const newJti = compactUuid(r.newJti);
    // As in create: whole seconds, which a binary record keeps anyway (a text one it meets in a
    // binary store loses under a second, never gains).
    const expiresAt =
      this.options.recordFormat === 'binary' ? keptExpiresAt(r.expiresAt) : r.expiresAt;
    const code = await this.written(
      place,
      this.writes.write(
        'kjrRotateSession',
        place.key,
        packArgs(ROTATE_FIELDS, {
          owner: place.owner,
          sessionId: place.owner + r.sessionId,
          oldJti,
          newJti,
          oldBytes: uuidBytes(r.oldJti, oldJti),
          newBytes: uuidBytes(r.newJti, newJti),
          now: r.now,
          expiresAt,
          expiresAtText: String(expiresAt),
          graceMs: r.graceMs,
          successor: r.successor === true,
          now36: base36(r.now),
          expiresAt36: base36(expiresAt),
        }),
      ),
    );
    // The script read the family on the master: with masterLease, an answer it gave after
    // another master could have been promoted (a family ended there still live here) is not used.
    this.lease?.check();
    return ROTATION.get(code) ?? 'missing';
  }

  async get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const { key, owner } = this.layout.place(userId);
    const field = owner + sessionId;
    const [core, ...meta] = await (this.records === undefined
      ? this.readRecordAlone(key, field)
      : this.records.add({ key, field }));
    this.lease?.check();
    const record = core ? unpackSession(sessionId, core, joinChunks(meta)) : undefined;
    return record && record.expiresAt > now ? record : undefined;
  }

  /** A family's core record and metadata chunks, as one `HMGET`, bounded in time. */
  private readRecordAlone(key: string, field: string): Promise<(Buffer | null)[]> {
    return this.readBounded(this.client.hmgetBuffer(key, field, ...metaFields(field)));
  }

  isLive(userId: string, sessionId: string, now: number): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return Promise.resolve(false);
    const place = this.layout.place(userId);
    if (this.cache === undefined)
      // One promise chain, no async function: this runs on every session-checked request.
      return this.readCore(place.key, place.owner + sessionId).then((core) => {
        this.lease?.check();
        return core !== null && coreExpiresAt(core) > now;
      });
    return this.isLiveCached(this.cache, place, place.owner + sessionId, now);
  }

  /** A family's core record, or null: batched on a single node, bounded in time either way. */
  private readCore(key: string, field: string): Promise<Buffer | null> {
    return this.cores === undefined
      ? this.readCoreAlone(key, field)
      : this.cores.add({ key, field });
  }

  /** A family's core record, as one `HGET`, bounded in time. */
  private readCoreAlone(key: string, field: string): Promise<Buffer | null> {
    return this.readBounded(this.client.hgetBuffer(key, field));
  }

  private async isLiveCached(
    cache: SessionCache,
    place: Place,
    field: string,
    now: number,
  ): Promise<boolean> {
    const known = cache.get(place.entry, field, now);
    if (known !== undefined) return known > now;
    const ticket = cache.begin(place.entry, now);
    let expiresAt: number | undefined;
    try {
      const core = await this.readCore(place.key, field);
      this.lease?.check();
      expiresAt = core === null ? 0 : coreExpiresAt(core);
      return expiresAt > now;
    } finally {
      if (ticket !== undefined) cache.finish(ticket, field, expiresAt);
    }
  }

  /**
   * A check that the session cache's "live" answer for this session still holds, cheap enough to
   * run per request (no lookup; see SessionCache.holds); undefined when the cache has no such answer.
   */
  livenessCheck(userId: string, sessionId: string, now: number): Holding | undefined {
    const cell = this.cachedCell(userId, sessionId, now);
    // The cell itself: it asks its cache (LivenessCell.holds).
    return cell === undefined || cell.expiresAt <= now ? undefined : cell;
  }

  /** The cached answer of `isLive`, when the session cache has one it can trust; else undefined. */
  cachedLiveness(userId: string, sessionId: string, now: number): boolean | undefined {
    const cell = this.cachedCell(userId, sessionId, now);
    return cell === undefined ? undefined : cell.expiresAt > now;
  }

  /** The session cache's cell of the session, if it has one it can trust now. */
  private cachedCell(userId: string, sessionId: string, now: number): LivenessCell | undefined {
    const cache = this.cache;
    if (cache === undefined) return undefined;
    // The per-user layout's entry is the user id and its field the session id: nothing to build.
    if (this.layout.buckets === 0) return cache.cell(userId, sessionId, now);
    const place = this.layout.place(userId);
    return cache.cell(place.entry, place.owner + sessionId, now);
  }

  async revoke(userId: string, sessionId: string): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return false;
    const place = this.layout.place(userId);
    const write = this.writes.write(
      'kjrRevokeSession',
      place.key,
      ...scriptArgs(REVOKE_SESSION_ARGS, {
        owner: place.owner,
        sessionId: place.owner + sessionId,
        now: Date.now(),
      }),
    );
    return (await this.written(place, write)) > 0;
  }

  async revokeAll(userId: string, now: number): Promise<number> {
    const place = this.layout.place(userId);
    const write = this.writes.write(
      'kjrRevokeAll',
      place.key,
      ...scriptArgs(REVOKE_ALL_ARGS, { owner: place.owner, now }),
    );
    return this.written(place, write);
  }

  async list(userId: string, now: number): Promise<SessionRecord[]> {
    const { key, owner } = this.layout.place(userId);
    const all = await this.readBounded(this.client.hgetallBuffer(key));
    this.lease?.check();
    const sessions: SessionRecord[] = [];
    for (const [field, core] of Object.entries(all)) {
      // Metadata, or another owner's family in a shared hash.
      if (isMetaField(field) || !field.startsWith(owner)) continue;
      const record = unpackSession(
        field.slice(owner.length),
        core,
        joinChunks(metaFields(field).map((name) => all[name])),
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
    // With masterLease, ready once the sentinels vouch for the master (at start, within ms).
    if (this.lease !== undefined) {
      await this.lease.settle(this.options.timeout);
      this.lease.check();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    const writers = this.writes.close();
    this.cache?.close();
    this.lease?.close();
    this.server?.close();
    const owned: IoRedisClient[] = this.options.ownsClient ? [this.client] : [];
    owned.push(...writers);
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
  const { wanted, ...options } = resolveRedisStoreConfig(config);
  const { client, owned, topology } = connectRedis(redis, options.timeout);
  if (options.masterLease !== undefined && topology !== 'sentinel') {
    if (owned) client.disconnect();
    throw new AuthConfigError(
      'masterLease',
      'asks Redis Sentinel who the master is: give `{ sentinels, name }` or a Sentinel ioredis client',
    );
  }
  return new RedisStore(client, {
    ...options,
    ownsClient: owned,
    // Sentinel and Cluster promote a replica on failover: only writes a replica has are safe
    // from it. A Cluster shard may have no replica: the store looks (see cluster-replicas.ts).
    waitForReplicas:
      wanted ?? (topology === 'sentinel' ? 1 : topology === 'cluster' ? 'replicated' : 0),
  });
}
