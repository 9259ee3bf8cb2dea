import { type Cluster, Redis } from 'ioredis';
import { warnOnce } from '../config/validate.js';
import { debug } from '../debug.js';
import { quietFailoverDetector } from './redis-connection.js';
import { type ConnectionServer, identify, sameServer, type ServerId } from './server-identity.js';
import type { Holding } from './session-store.js';

/** Options of the session liveness cache (`sessionCache`). */
export interface SessionCacheOptions {
  /** Sessions remembered; past it the oldest users' entries go first. @default 100000 */
  maxEntries?: number;
  /**
   * Longest time an answer may rest on an invalidation feed that has not been heard from, in ms.
   * The feed is pinged four times per period; a connection that dies without a word (a network
   * partition) can leave the cache stale for at most this long. @default 1000
   */
  maxStaleness?: number;
}

export interface ResolvedSessionCache {
  maxEntries: number;
  maxStaleness: number;
}

const CHANNEL = '__redis__:invalidate';
/** How long a feed that Redis refused waits before it asks again. */
const REFUSED_RETRY_MS = 5000;
/** The feed's connections look for the server again at most this often (see relocate). */
const RELOCATE_MS = 1000;
/** Misplaced this long without a break: the cache is off for good, a warning says so. */
const MISPLACED_WARNING_MS = 10_000;

/**
 * One cached session answer. A holder of a cell (the middlewares' answer memo) may rely on it
 * while {@link SessionCache.holds} says so: the cell is dropped when its user is invalidated,
 * replaced or evicted, and every cell goes at once when the cache is dropped (generation).
 */
export class LivenessCell implements Holding {
  dropped = false;
  constructor(
    /** The session's expiry in epoch ms; 0 when it is not live. */
    readonly expiresAt: number,
    readonly generation: number,
    private readonly cache: SessionCache,
  ) {}

  /** Whether the cell still says "live" at `now` (see {@link SessionCache.holds}). */
  holds(now: number): boolean {
    return this.cache.holds(this, now);
  }
}

/** An in-flight read: an invalidation of its key while it is on the wire makes its answer uncacheable. */
interface Ticket {
  key: string;
  generation: number;
  valid: boolean;
}

/**
 * One Redis server's invalidation feed: a subscriber connection on `__redis__:invalidate`, and a
 * tracker connection with `CLIENT TRACKING on REDIRECT <subscriber> BCAST PREFIX <prefix>`, so
 * Redis pushes the name of every key under the prefix that anyone changes, whoever reads it and
 * on whichever connection (RESP2; the tracking is the tracker's, so it too must stay up).
 * `up` is true only between a confirmed set-up and the first sign of trouble on either
 * connection (or, on a Cluster master, its saying the cluster is not ok); `confirmedAt` is when
 * the last heartbeat both connections answered was sent (a PING each; CLUSTER INFO on a Cluster
 * master's tracker): every invalidation Redis sent before it has been read, and the tracking
 * it redirected was still alive (a tracker dropped without a word, by a dead peer or a
 * middlebox, stops invalidations as surely as a dead subscriber; pinged, it cannot sit idle long
 * enough for Redis's `timeout` to close it either).
 */
class InvalidationFeed {
  up = false;
  confirmedAt = 0;
  private readonly subscriber: Redis;
  private readonly tracker: Redis;
  private setups = 0;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  /** The server both connections are on, while `up`. */
  server: ServerId | undefined;
  /** The subscriber's CLIENT ID while it is subscribed (a tracker that reconnects alone reuses it). */
  private subscriberId: number | undefined;
  /** And the server it is subscribed on. */
  private subscriberServer: ServerId | undefined;
  /** A refused set-up (an ACL without CLIENT, a Redis before 6) is tried again after this. */
  private retry: NodeJS.Timeout | undefined;
  /** A Cluster node whose ACL refuses CLUSTER INFO: its heartbeat is a PING, as elsewhere. */
  private clusterInfoRefused = false;
  /** A relocation waiting for its turn, and when the last one was made (see relocate). */
  private relocating: NodeJS.Timeout | undefined;
  private relocatedAt = 0;
  /** Since when the feed has kept reaching another server than it should, if it has. */
  private misplacedSince: number | undefined;

  constructor(
    make: () => Redis,
    private readonly prefix: string,
    private readonly onKeys: (keys: Buffer[] | null) => void,
    private readonly onDown: () => void,
    /** Called each time the feed comes up (its `server` then known). */
    private readonly onUp: () => void,
    private readonly interval: number,
    /** How long without an answered PING before both connections are replaced. */
    private readonly silentAfter: number,
    /**
     * A Cluster master: the feed is up only while the node says the cluster is ok. A master cut
     * off from the majority says fail once cluster-node-timeout has passed, and refuses reads
     * and writes from then on (CLUSTERDOWN), before its replica can be promoted on the other
     * side. Its feed still answers, but a revocation on the promoted replica never reaches it:
     * without this, a cached answer could outlive the split.
     */
    private readonly clusterNode = false,
  ) {
    this.subscriber = make();
    this.tracker = make();
    for (const event of ['close', 'end', 'reconnecting'])
      this.subscriber.on(event, () => {
        this.subscriberId = undefined;
        this.subscriberServer = undefined;
      });
    for (const connection of [this.subscriber, this.tracker]) {
      connection.on('error', () => {});
      // Any sign of trouble drops the cache at once, before any later answer could rely on it.
      connection.on('close', () => this.down());
      connection.on('end', () => this.down());
      connection.on('reconnecting', () => this.down());
      connection.on('ready', () => void this.setUp());
    }
    this.subscriber.on('messageBuffer', (channel: Buffer, message: unknown) => {
      if (channel.toString() !== CHANNEL) return;
      // A flush of the database is announced as a null message.
      this.onKeys(Array.isArray(message) ? (message as Buffer[]) : null);
    });
    this.heartbeat = setInterval(() => this.ping(), interval);
    this.heartbeat.unref();
  }

  private down(): void {
    this.setups++;
    this.server = undefined;
    if (this.up) {
      this.up = false;
      this.onDown();
    }
  }

  private async setUp(): Promise<void> {
    if (this.closed || this.subscriber.status !== 'ready' || this.tracker.status !== 'ready')
      return;
    const attempt = ++this.setups;
    try {
      // A subscriber still subscribed (only the tracker reconnected) cannot run CLIENT ID, and
      // need not: its id is known.
      if (this.subscriberId === undefined) {
        const id = (await this.subscriber.client('ID')) as number;
        const server = await identify(this.subscriber, this.silentAfter);
        await this.subscriber.subscribe(CHANNEL);
        // Only this attempt's: an older one's answer may name a connection since replaced.
        if (attempt === this.setups && this.subscriber.status === 'ready') {
          this.subscriberId = id;
          this.subscriberServer = server;
        }
      }
      const id = this.subscriberId;
      const subscribedOn = this.subscriberServer;
      if (id === undefined || subscribedOn === undefined) return;
      const sent = Date.now();
      // Each connection finds the master for itself (Sentinel, a DNS name that moves): a tracker
      // on another server than the subscriber would redirect to whichever client there has its id.
      const server = await identify(this.tracker, this.silentAfter);
      if (attempt !== this.setups || this.closed) return;
      if (!sameServer(server, subscribedOn))
        return this.relocate('its subscriber and tracker reached two servers');
      const prefix = this.prefix === '' ? [] : ['PREFIX', this.prefix];
      // The tracker may have outlived a subscriber: its tracking then points at a dead id.
      await this.tracker.call('CLIENT', 'TRACKING', 'OFF');
      await this.tracker.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', id, 'BCAST', ...prefix);
      const ok = await this.nodeOk();
      if (attempt !== this.setups || this.closed) return;
      if (!ok) return this.askAgain();
      this.confirmedAt = sent;
      this.server = server;
      this.up = true;
      this.onUp();
    } catch (error) {
      if (attempt !== this.setups || this.closed) return;
      if (/^NOPERM|unknown (sub)?command/i.test((error as Error).message)) {
        // Redis refuses it (an ACL without CLIENT or SUBSCRIBE, a Redis before 6): the cache
        // stays off, every check asks Redis, and set-up is tried again now and then.
        warnOnce(
          'KOA_JWT_REDIS_SESSION_CACHE',
          `sessionCache is off: Redis refused its invalidation feed (${(error as Error).message}); every session check asks Redis. It needs Redis 6 or later and the CLIENT and SUBSCRIBE commands.`,
        );
        this.askAgain(REFUSED_RETRY_MS);
      }
      // Either connection failed while setting up (or Redis answered something else, such as a
      // REDIRECT to a client gone): start over on a fresh subscriber.
      else {
        this.subscriberId = undefined;
        this.subscriber.disconnect(true);
      }
    }
  }

  private ping(): void {
    if (!this.up) return;
    const sent = Date.now();
    // Unanswered for twice the staleness bound: a connection gone silent, which TCP may take
    // minutes to give up on. Reconnect both, so that the cache comes back.
    if (sent - this.confirmedAt > this.silentAfter) {
      this.subscriber.disconnect(true);
      this.tracker.disconnect(true);
      return;
    }
    const attempt = this.setups;
    Promise.all([this.subscriber.ping(), this.nodeOk()]).then(
      ([, ok]) => {
        if (attempt !== this.setups) return;
        if (!ok) {
          // Cut off from its cluster's majority: nothing cached may be answered from here on.
          this.down();
          this.askAgain();
        } else if (sent > this.confirmedAt) this.confirmedAt = sent;
      },
      () => {},
    );
  }

  /**
   * The tracker's heartbeat: a PING, or on a Cluster master its CLUSTER INFO, which must say
   * `cluster_state:ok` (see `clusterNode`). An ACL that refuses CLUSTER INFO leaves the PING.
   */
  private async nodeOk(): Promise<boolean> {
    if (!this.clusterNode || this.clusterInfoRefused) {
      await this.tracker.ping();
      return true;
    }
    try {
      return /^cluster_state:ok\b/m.test(String(await this.tracker.call('CLUSTER', 'INFO')));
    } catch (error) {
      if (!/^NOPERM/.test((error as Error).message)) throw error;
      this.clusterInfoRefused = true;
      return this.nodeOk();
    }
  }

  /**
   * Both connections look for the server again (Sentinel, or a DNS name, may give them another):
   * they reached another server than each other, or than the client's reads. At most once per
   * RELOCATE_MS; one that keeps happening for MISPLACED_WARNING_MS is warned of, once.
   */
  relocate(why: string): void {
    if (this.closed || this.relocating !== undefined) return;
    const now = Date.now();
    this.misplacedSince ??= now;
    if (now - this.misplacedSince >= MISPLACED_WARNING_MS)
      warnOnce(
        'KOA_JWT_REDIS_SESSION_CACHE_SERVER',
        `sessionCache is off while its invalidation feed cannot reach the Redis server the client reads (${why}); every check asks Redis. Behind a proxy or a name for several servers, allow INFO so that servers are told by run id.`,
      );
    this.relocating = setTimeout(
      () => {
        this.relocating = undefined;
        if (this.closed) return;
        this.relocatedAt = Date.now();
        debug.store('sessionCache: %s; its connections look for the server again', why);
        this.subscriberId = undefined;
        this.subscriber.disconnect(true);
        this.tracker.disconnect(true);
      },
      Math.max(0, this.relocatedAt + RELOCATE_MS - now),
    );
    this.relocating.unref();
  }

  /** The feed is where it should be. */
  settled(): void {
    this.misplacedSince = undefined;
  }

  /** Sets up again later: after a refusal, or while the node says its cluster is not ok. */
  private askAgain(after = this.interval): void {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.setUp(), after).unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retry);
    clearTimeout(this.relocating);
    this.down();
    this.subscriber.disconnect();
    this.tracker.disconnect();
  }
}

/**
 * Session liveness kept in process, coherent with Redis through server-assisted client-side
 * caching (see InvalidationFeed). A cached answer is given only while every feed is up and was
 * heard from within `maxStaleness`; an invalidation drops the user's entries, and one that
 * arrives while a read of that user is in flight keeps that read's answer out of the cache (the
 * answer itself is fresh, from Redis). On a Cluster there is one feed per master node.
 */
export class SessionCache {
  /** Per user (by entry key: the user id), each known session's cell. */
  private readonly entries = new Map<string, Map<string, LivenessCell>>();
  private count = 0;
  private readonly inflight = new Map<string, Ticket[]>();
  private feeds: InvalidationFeed[] = [];
  /** Bumped whenever the cache is dropped: reads begun before it cannot fill it. */
  private generation = 0;
  private closed = false;
  /** Removes the listeners on a Cluster client (which may be the app's own, and outlive us). */
  private unlisten: () => void = () => {};
  /**
   * Whether the feed is up on the server the client's reads go to (see `server`); always true on
   * a Cluster, whose feeds are each made for one node's address.
   */
  private onReadServer = true;

  constructor(
    private readonly client: Redis | Cluster,
    /** What every session hash's key starts with, as Redis sees it (the client's own `keyPrefix` included): the feeds track only these keys. */
    private readonly prefix: string,
    private readonly options: ResolvedSessionCache,
    /**
     * What an invalidated Redis key means to the cache: the entry key (the user id) it holds
     * that user's sessions under, or undefined for a key it cannot place (then everything goes).
     */
    private readonly entryOf: (redisKey: string) => string | undefined = (redisKey) => redisKey,
    /** Whether the master may be trusted at all now (MasterLease.holds); always, when undefined. */
    private readonly trusted?: () => boolean,
    /**
     * Not on a Cluster: which server the client's own connection is on. The feed finds the master
     * on connections of its own, and after a failover (Sentinel's, or a DNS name that moves) the
     * two may for a while be on different servers, where the feed hears nothing of the writes
     * the reads see: cached answers are given only while both are on one server.
     */
    private readonly server?: ConnectionServer,
  ) {
    if (client.isCluster) {
      const cluster = client as Cluster;
      const rebuild = () => this.buildClusterFeeds(cluster);
      // Nodes come and go with failovers and resharding: rebuild the feeds on every change.
      const events = ['ready', '+node', '-node', 'refresh'];
      for (const event of events) cluster.on(event, rebuild);
      this.unlisten = () => {
        for (const event of events) cluster.off(event, rebuild);
      };
      if (cluster.status === 'ready') rebuild();
    } else {
      const redis = client as Redis;
      this.feeds = [this.feed(() => quietFailoverDetector(redis.duplicate(FEED_CONNECTION)))];
      if (server !== undefined) {
        this.onReadServer = false;
        server.listen(this.serverChanged);
      }
    }
  }

  /**
   * The client (re)connected, or its server is known: reads sent before are void (they may be
   * answered from the new connection's server), and the cache serves only once the feed is up
   * on that same server.
   */
  private readonly serverChanged = () => {
    if (this.server?.current === undefined) this.drop();
    this.align();
  };

  /**
   * Whether the feed is up on the server the client's connection is on, now. A feed up on
   * another one looks for the server again (a failover its connections have not followed).
   */
  private align(): void {
    if (this.server === undefined) {
      for (const feed of this.feeds) if (feed.up) feed.settled();
      return;
    }
    const reads = this.server.current;
    const feed = this.feeds[0];
    this.onReadServer = false;
    if (reads === undefined || feed?.server === undefined || !feed.up) return;
    if (sameServer(reads, feed.server)) {
      this.onReadServer = true;
      feed.settled();
    } else feed.relocate('it is on another server than the client');
  }

  private feed(make: () => Redis, clusterNode = false): InvalidationFeed {
    return new InvalidationFeed(
      make,
      this.prefix,
      (keys) => this.invalidate(keys),
      () => this.drop(),
      () => this.align(),
      Math.max(1, Math.floor(this.options.maxStaleness / 4)),
      this.options.maxStaleness * 2,
      clusterNode,
    );
  }

  private buildClusterFeeds(cluster: Cluster): void {
    if (this.closed) return;
    const masters = cluster.nodes('master');
    const wanted = masters.map((node) => `${node.options.host}:${node.options.port}`).sort();
    const current = this.feedNodes.join(',');
    if (wanted.join(',') === current && this.feeds.length > 0) return;
    for (const feed of this.feeds) feed.close();
    this.drop();
    this.feedNodes = wanted;
    const base = cluster.options.redisOptions ?? {};
    this.feeds = masters.map((node) =>
      this.feed(
        () =>
          new Redis({
            ...base,
            ...FEED_CONNECTION,
            host: node.options.host,
            port: node.options.port,
          }),
        true,
      ),
    );
  }

  private feedNodes: string[] = [];

  /** Whether cached answers may be given now. */
  private usable(now: number): boolean {
    if (
      this.feeds.length === 0 ||
      !this.onReadServer ||
      (this.trusted !== undefined && !this.trusted())
    )
      return false;
    for (const feed of this.feeds) {
      if (!feed.up || now - feed.confirmedAt > this.options.maxStaleness) return false;
    }
    return true;
  }

  /** The session's expiry (0 when not live) if known and trustworthy now, else undefined. */
  get(key: string, sessionId: string, now: number): number | undefined {
    return this.cell(key, sessionId, now)?.expiresAt;
  }

  /** The session's cell if known and trustworthy now, else undefined. */
  cell(key: string, sessionId: string, now: number): LivenessCell | undefined {
    if (this.count === 0) return undefined;
    if (!this.usable(now)) {
      // Heard from too long ago: whatever was missed, nothing here is trusted any more.
      this.drop();
      return undefined;
    }
    return this.entries.get(key)?.get(sessionId);
  }

  /**
   * Whether a cell handed out by {@link cell} still says "live" now: not dropped since, the cache
   * not dropped since (generation), every feed up and heard from within maxStaleness, and the
   * session not yet expired. No map lookup: this is the answer memo's per-request check.
   */
  holds(cell: LivenessCell, now: number): boolean {
    return (
      !cell.dropped &&
      cell.generation === this.generation &&
      cell.expiresAt > now &&
      this.usable(now)
    );
  }

  /** Call before reading `key` from Redis; hand the ticket to `finish` with the answer. */
  begin(key: string, now: number): Ticket | undefined {
    if (!this.usable(now)) return undefined;
    const ticket: Ticket = { key, generation: this.generation, valid: true };
    const list = this.inflight.get(key);
    if (list === undefined) this.inflight.set(key, [ticket]);
    else list.push(ticket);
    return ticket;
  }

  /** Ends a read begun with `begin`; caches `expiresAt` unless the key changed meanwhile. */
  finish(ticket: Ticket, sessionId: string, expiresAt: number | undefined): void {
    const list = this.inflight.get(ticket.key);
    if (list !== undefined) {
      const at = list.indexOf(ticket);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) this.inflight.delete(ticket.key);
    }
    if (
      expiresAt === undefined ||
      !ticket.valid ||
      ticket.generation !== this.generation ||
      !this.usable(Date.now())
    )
      return;
    let sessions = this.entries.get(ticket.key);
    if (sessions?.has(sessionId) !== true && this.count >= this.options.maxEntries) {
      this.evict(ticket.key);
      sessions = this.entries.get(ticket.key);
    }
    if (sessions === undefined) {
      sessions = new Map();
      this.entries.set(ticket.key, sessions);
    }
    const previous = sessions.get(sessionId);
    if (previous === undefined) this.count++;
    else previous.dropped = true;
    sessions.set(sessionId, new LivenessCell(expiresAt, this.generation, this));
  }

  /** Drops a user's entries now: this instance's own writes need not wait for the feed. */
  forget(key: string): void {
    this.remove(key);
    const list = this.inflight.get(key);
    if (list !== undefined) for (const ticket of list) ticket.valid = false;
  }

  private invalidate(keys: Buffer[] | null): void {
    if (keys === null) {
      this.drop();
      return;
    }
    for (const key of keys) {
      const entry = this.entryOf(key.toString());
      if (entry === undefined) {
        this.drop();
        return;
      }
      this.forget(entry);
    }
  }

  /**
   * Makes room for a new cell: the entries cached first go first, until a tenth of the room is
   * free; `keep` (the entry the cell goes in) goes last, only if it alone fills the room (one
   * user with many sessions, or a shared hash).
   */
  private evict(keep: string): void {
    const room = this.options.maxEntries * 0.9;
    for (const key of this.entries.keys()) {
      if (this.count < room) return;
      if (key !== keep) this.remove(key);
    }
    if (this.count >= room) this.remove(keep);
  }

  /** Drops an entry's cells and their count. */
  private remove(key: string): void {
    const sessions = this.entries.get(key);
    if (sessions === undefined) return;
    this.entries.delete(key);
    this.count -= sessions.size;
    dropAll(sessions);
  }

  private drop(): void {
    this.generation++;
    this.entries.clear();
    this.count = 0;
    for (const list of this.inflight.values()) for (const ticket of list) ticket.valid = false;
  }

  get size(): number {
    return this.count;
  }

  close(): void {
    this.closed = true;
    this.unlisten();
    this.server?.unlisten(this.serverChanged);
    for (const feed of this.feeds) feed.close();
    this.feeds = [];
    this.drop();
  }
}

function dropAll(sessions: Map<string, LivenessCell>): void {
  for (const cell of sessions.values()) cell.dropped = true;
}

/** The feed connections: never queue offline, reconnect soon, no prefix of the app's own. */
const FEED_CONNECTION = {
  lazyConnect: false,
  autoResubscribe: false,
  enableOfflineQueue: false,
  enableAutoPipelining: false,
  maxRetriesPerRequest: 1,
  keyPrefix: '',
  // An unanswered SUBSCRIBE re-sent on a new connection would subscribe it behind setUp's back.
  autoResendUnfulfilledCommands: false,
  retryStrategy: (attempt: number) => Math.min(attempt * 50, 500),
  // The feeds rely on RESP2 invalidation messages on __redis__:invalidate (REDIRECT to a
  // subscriber). ioredis 6 speaks RESP3 by default, where they arrive as push frames instead;
  // ioredis 5 ignores the option.
  protocol: 2,
} as const;
