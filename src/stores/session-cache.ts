import { type Cluster, Redis } from 'ioredis';
import { FEED_CONNECTION, InvalidationFeed } from './invalidation-feed.js';
import { quietFailoverDetector } from './redis-connection.js';
import { type ConnectionServer, sameServer } from './server-identity.js';
import type { Holding } from './session-store.js';

/** Options of the session liveness cache (`sessionCache`). */
export interface SessionCacheOptions {
  /** Sessions remembered; past it the oldest users' entries go first. @default 100000 */
  maxEntries?: number | undefined;
  /**
   * Longest time an answer may rest on an invalidation feed that has not been heard from, in ms.
   * The feed is pinged four times per period; a connection that dies without a word (a network
   * partition) can leave the cache stale for at most this long. @default 1000
   */
  maxStaleness?: number | undefined;
}

export interface ResolvedSessionCache {
  maxEntries: number;
  maxStaleness: number;
}

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
