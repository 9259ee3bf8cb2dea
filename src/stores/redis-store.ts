import type { Cluster, Redis } from 'ioredis';
import { AuthConfigError } from '../errors.js';
import { keyPrefixOption, onlyKnown, wholeNumber } from '../config/validate.js';
import { bounded, StoreTimeoutError } from './bounded.js';
import {
  MasterLease,
  type MasterLeaseOptions,
  type ResolvedMasterLease,
  resolveMasterLease,
} from './master-lease.js';
import { TurnBatcher } from './turn-batcher.js';
import { ConnectionServer } from './server-identity.js';
import { KeyLayout, type Place } from './key-layout.js';
import { keySlot } from './cluster-slots.js';
import { type ReplicaWatch, watchReplicas } from './cluster-replicas.js';
import {
  connectRedis,
  type IoRedisClient,
  isRedisClient,
  quietFailoverDetector,
  type RedisOption,
} from './redis-connection.js';
import {
  BATCHED_WRITES,
  type BatchedName,
  batched,
  confirmedWrite,
  defineScripts,
  EVALUATE,
  type Evaluate,
  type Read,
  type ScriptArgs,
  type ScriptedTarget,
  type ScriptName,
  type Write,
} from './redis-scripts.js';
import {
  CREATE_FIELDS,
  REVOKE_ALL_ARGS,
  REVOKE_SESSION_ARGS,
  ROTATE_FIELDS,
  ROTATE_RESULTS,
} from './lua.js';
import { packArgs, scriptArgs } from './script-args.js';
import {
  type LivenessCell,
  type ResolvedSessionCache,
  SessionCache,
  type SessionCacheOptions,
} from './session-cache.js';
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

/** Connections for confirmed writes (see `writers`), besides the one for reads. */
const WRITER_CONNECTIONS = 4;
/** ioredis's error for a command that outlived its `commandTimeout` (ioredis 5 and 6). */
const IOREDIS_TIMEOUT = 'Command timed out';

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

/** A write the master took but too few replicas confirmed in time: a failover could undo it. */
export class ReplicationError extends Error {
  /** `setting`: the store's waitForReplicas, as the user gave it or as the topology's default set it. */
  constructor(wanted: number, got: number, ms: number, setting: number | 'replicated') {
    const option =
      setting === 'replicated'
        ? `waitForReplicas: 'replicated', a Cluster's default: one replica for each shard that has one`
        : `waitForReplicas: ${setting}`;
    super(
      `the write reached ${got} of the ${wanted} replicas required within ${ms} ms (${option}): a master with fewer replicas connected and in sync cannot confirm a write; see the README, "Redis topologies"`,
    );
    this.name = 'ReplicationError';
  }
}

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
  /**
   * Where confirmed writes go: connections of their own, because `WAIT` blocks the connection it
   * runs on until the replicas answer. Session checks must not queue behind it, and with several
   * connections one write's confirmation does not hold up the next one's.
   */
  private readonly writers: { client: IoRedisClient; busy: number }[] = [];
  /** Replicas each write waits for: options.waitForReplicas (0 with `'replicated'`). */
  private readonly wanted: number;
  /**
   * With `'replicated'` on a Cluster: 1 for each hash slot whose master has a replica (its writes
   * wait for one), else 0. Undefined until first known.
   */
  private slotsWaiting: Uint8Array | undefined;
  /** `'replicated'` until the Cluster's replicas are known: no write goes out before, unconfirmed. */
  private deciding: Promise<void> | undefined;
  /** With `'replicated'` on a Cluster: which shards have a replica, asked again as it changes. */
  private readonly replicaWatch: ReplicaWatch | undefined;
  /** Reads may skip our own timer: see {@link readBounded}. */
  private readonly readsTimeOut: boolean;
  private closing = false;
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
   * Session checks and the hot writes (logins, rotations), one command per kind per turn of the
   * event loop (see TurnBatcher). Single node only: one batch's keys may lie in different Cluster
   * slots, so a Cluster sends each call as its own command.
   */
  private readonly cores: TurnBatcher<Read, Buffer | null> | undefined;
  /** Whole-record reads (`get`, the session strategy's check), batched the same way. */
  private readonly records: TurnBatcher<Read, (Buffer | null)[]> | undefined;
  private readonly batchedWrites = new Map<ScriptName, TurnBatcher<Write, number>>();
  /** Binary records keep expiries and rotation times to the second (record-codec.ts). */
  readonly timeResolution: number;

  constructor(
    client: IoRedisClient,
    private readonly options: RedisStoreOptions,
  ) {
    defineScripts(client);
    this.client = quietFailoverDetector(client);
    this.timeResolution = options.recordFormat === 'binary' ? 1000 : 1;
    if (options.ownsClient) this.keepConnecting(client);
    this.wanted = options.waitForReplicas === 'replicated' ? 0 : options.waitForReplicas;
    if (this.wanted > 0) this.addWriters();
    else if (options.waitForReplicas === 'replicated' && client.isCluster) {
      const watch = watchReplicas(
        client as Cluster,
        (command) => this.bounded(command),
        (slots) => {
          this.slotsWaiting = slots;
          if (this.writers.length === 0 && slots.includes(1)) this.addWriters();
        },
      );
      this.replicaWatch = watch;
      // Writes wait (bounded) for the first answer.
      this.deciding = watch.first.then(() => {
        this.deciding = undefined;
      });
    }
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
      for (const [name, batchedName] of Object.entries(BATCHED_WRITES) as [
        ScriptName,
        BatchedName,
      ][])
        this.batchedWrites.set(
          name,
          new TurnBatcher(
            ({ key, args }) => this.writeOne(name, key, args),
            (writes) => this.writeMany(batchedName, writes),
          ),
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

  /** The connections confirmed writes go through (see `writers`). */
  private addWriters(): void {
    for (let i = 0; i < WRITER_CONNECTIONS; i++) {
      // ioredis 6 types duplicate() per class, so a call on the union does not compile.
      const writer: IoRedisClient = this.client.isCluster
        ? (this.client as Cluster).duplicate()
        : quietFailoverDetector((this.client as Redis).duplicate());
      writer.on('error', () => {});
      this.keepConnecting(writer);
      this.writers.push({ client: writer, busy: 0 });
    }
  }

  /**
   * Reconnects a client of ours that gave up. ioredis ends a Sentinel client for good when a
   * failover interrupts its reconnection (the sentinels' `+switch-master`, or a `READONLY`,
   * arriving while it is still connecting): every later command would fail with "Connection is
   * closed". A session store must come back by itself.
   */
  private keepConnecting(client: IoRedisClient): void {
    client.on('end', () => {
      if (this.closing) return;
      setTimeout(() => {
        if (!this.closing && client.status === 'end') client.connect().catch(() => {});
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

  /** A write script's result: batched with the turn's others of its kind where it can be. */
  private write(name: ScriptName, key: string, ...args: ScriptArgs): Promise<number> {
    const batcher = this.batchedWrites.get(name);
    return batcher === undefined ? this.writeOne(name, key, args) : batcher.add({ key, args });
  }

  private async writeOne(name: ScriptName, key: string, args: ScriptArgs): Promise<number> {
    return Number(
      await this.runScript(
        (target) => (target as ScriptedTarget)[name](key, ...args),
        (target, text) => EVALUATE[name](target, text, 1, [key, ...args]),
        key,
      ),
    );
  }

  /** Several calls of one write script, in one batched script call (single node). */
  private async writeMany(name: BatchedName, writes: Write[]): Promise<(number | Error)[]> {
    const argv: ScriptArgs = writes.map((write) => write.key);
    for (const { args } of writes) argv.push(args.length, ...args);
    const results = (await this.runScript(
      (target) => batched(target, name, writes.length, argv),
      (target, text) => EVALUATE[name](target, text, writes.length, argv),
    )) as unknown[];
    return results.map((result) => (result instanceof Error ? result : Number(result)));
  }

  /**
   * Runs a write script, bounded in time: `invoke` calls it on the client, or, with
   * `waitForReplicas`, `evaluate` queues it on a writer's pipeline (see Evaluate), with
   * a `WAIT` after it in the same round trip, on the same connection (so, on a Cluster, on the
   * node that ran the script): the write only counts once that many replicas have it, and a
   * failover cannot undo it.
   */
  private async runScript(
    invoke: (target: object) => unknown,
    evaluate: Evaluate,
    key?: string,
  ): Promise<unknown> {
    // One bound for the whole call, the wait for the Cluster's replicas included.
    const deadline = Date.now() + this.options.timeout;
    if (this.deciding !== undefined) await this.bounded(this.deciding);
    const started = Date.now();
    const ms = Math.max(1, deadline - started);
    const wanted =
      this.slotsWaiting !== undefined && key !== undefined
        ? // The slot of the key as Redis sees it: the client's own prefix in front.
          this.slotsWaiting[keySlot(this.clientPrefix + key)]!
        : this.wanted;
    if (wanted === 0) return bounded(invoke(this.client) as Promise<unknown>, ms, 'Redis');
    const writer = this.writers.reduce((a, b) => (b.busy < a.busy ? b : a));
    // Busy until Redis answers, even past our timeout: the connection is blocked until then.
    writer.busy++;
    const exec = confirmedWrite(writer.client, evaluate, wanted, deadline, () =>
      this.replicaWatch?.recheck(),
    );
    exec.then(
      () => writer.busy--,
      () => writer.busy--,
    );
    // WAIT's own timeout ends near ours (Redis checks it about every 100 ms), so a master with
    // no replica in sync mostly ends here: the error says what the write was waiting for.
    const waitingFor = `Redis, or the ${wanted === 1 ? 'replica' : `${wanted} replicas`} that waitForReplicas asks to confirm the write,`;
    const results = await bounded(exec, ms, waitingFor);
    const [script, wait] = results ?? [];
    if (!script || !wait) throw new Error('the write pipeline returned no results');
    if (script[0]) throw script[0];
    // The client's commandTimeout (ours, when we made the client) was armed as WAIT was sent,
    // before our timer, and wins a tie with it: the same timeout, said the same way.
    // An app's own client may time out sooner than the store: the time is the one waited.
    if (wait[0])
      throw (wait[0] as Error).message === IOREDIS_TIMEOUT
        ? new StoreTimeoutError(waitingFor, Math.min(ms, Date.now() - started))
        : wait[0];
    const got = Number(wait[1]);
    if (!(got >= wanted)) throw new ReplicationError(wanted, got, ms, this.options.waitForReplicas);
    return script[1];
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
      this.write(
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
      this.write(
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
    const write = this.write(
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
    const write = this.write(
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
    this.replicaWatch?.stop();
    this.cache?.close();
    this.lease?.close();
    this.server?.close();
    const owned: IoRedisClient[] = this.options.ownsClient ? [this.client] : [];
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
  if (isRedisClient(config))
    throw fail(
      'redisStore options',
      'is a Redis client: the client comes first, redisStore(client, { keyPrefix, timeout })',
    );
  // A misspelt `waitForReplicas` would drop the failover guarantee without a word.
  onlyKnown('redisStore', config, REDIS_STORE_OPTION_NAMES);
  const keyPrefix = keyPrefixOption(config.keyPrefix ?? 'auth:');
  const timeout = wholeNumber('timeout', config.timeout ?? 1000, 10, 60_000);
  const sessionCache = resolveSessionCache(config.sessionCache);
  const keyBuckets = wholeNumber('keyBuckets', config.keyBuckets ?? 0, 0, 2 ** 24);
  const recordFormat = resolveRecordFormat(config.recordFormat);
  const wanted =
    config.waitForReplicas === undefined
      ? undefined
      : wholeNumber('waitForReplicas', config.waitForReplicas, 0, 16);
  const masterLease = resolveMasterLease(config.masterLease);
  const { client, owned, topology } = connectRedis(redis, timeout);
  if (masterLease !== undefined && topology !== 'sentinel') {
    if (owned) client.disconnect();
    throw fail(
      'masterLease',
      'asks Redis Sentinel who the master is: give `{ sentinels, name }` or a Sentinel ioredis client',
    );
  }
  return new RedisStore(client, {
    keyPrefix,
    timeout,
    ownsClient: owned,
    sessionCache,
    masterLease,
    keyBuckets,
    recordFormat,
    // Sentinel and Cluster promote a replica on failover: only writes a replica has are safe
    // from it. A Cluster shard may have no replica: the store looks (see cluster-replicas.ts).
    waitForReplicas:
      wanted ?? (topology === 'sentinel' ? 1 : topology === 'cluster' ? 'replicated' : 0),
  });
}
