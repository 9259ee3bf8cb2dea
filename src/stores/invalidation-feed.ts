import type { Redis } from 'ioredis';
import { warnOnce } from '../config/validate.js';
import { debug } from '../debug.js';
import { identify, sameServer, type ServerId } from './server-identity.js';

const CHANNEL = '__redis__:invalidate';
/** How long a feed that Redis refused waits before it asks again. */
const REFUSED_RETRY_MS = 5000;
/** The feed's connections look for the server again at most this often (see relocate). */
const RELOCATE_MS = 1000;
/** Misplaced this long without a break: the cache is off for good, a warning says so. */
const MISPLACED_WARNING_MS = 10_000;

/** The feed connections: never queue offline, reconnect soon, no prefix of the app's own. */
export const FEED_CONNECTION = {
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
export class InvalidationFeed {
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
