import { performance } from 'node:perf_hooks';
import { Redis, type RedisOptions, ReplyError } from 'ioredis';
import { onlyKnown, warn, warnOnce, wholeNumber } from '../config/validate.js';
import { debug } from '../debug.js';
import { AuthConfigError } from '../errors.js';
import { bounded } from './bounded.js';
import { natMapped } from './redis-connection.js';
import type { ConnectionServer } from './server-identity.js';

/** `masterLease` as given to `redisStore`/`createAuth`. */
export interface MasterLeaseOptions {
  /**
   * How often the sentinels are asked, in ms. Each answer vouches for the master until
   * `down-after-milliseconds` after that sentinel last heard from it, so the interval must be
   * well under the sentinels' `down-after-milliseconds` minus their 1 s PING period, or the
   * lease lapses between rounds (a warning says so). @default 500
   */
  interval?: number | undefined;
}

export interface ResolvedMasterLease {
  interval: number;
}

/** `masterLease` as given, checked: undefined when off. */
export function resolveMasterLease(value: unknown): ResolvedMasterLease | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { interval: DEFAULT_INTERVAL };
  if (value === null || typeof value !== 'object')
    throw new AuthConfigError('masterLease', 'must be true, false or { interval }');
  const given = value as Record<string, unknown>;
  onlyKnown('masterLease', given, ['interval']);
  return {
    interval: wholeNumber('masterLease.interval', given.interval ?? DEFAULT_INTERVAL, 50, 10_000),
  };
}

const DEFAULT_INTERVAL = 500;
/** Taken off every grant: timers firing late, the two clocks' rates. */
const MARGIN_MS = 100;
/** How often a sentinel PINGs the master (Redis's SENTINEL_PING_PERIOD). */
const PING_PERIOD_MS = 1000;
/** A sentinel's flags while it sees the master up and no failover of it is under way. */
const HEALTHY_FLAGS = 'master';
/**
 * How long another sentinel may count a "master is down" reply of this one (Redis keeps such
 * replies 5 s, clearing them on a 100 ms timer), with room for the reply's own trip: a sentinel
 * that saw the master down within this long could still help a quorum that fails it over, so
 * its answers vouch only once this long has passed since its last possible sighting.
 */
const SDOWN_REMEMBERED_MS = 6000;
/** Flags of a failover that has begun: no answer of the old master is trusted from then on. */
const FAILING_OVER = /(^|,)(s_down|o_down|failover_in_progress)(,|$)/;
/** A peer's flag in `SENTINEL SENTINELS`: the asked sentinel counts its "master is down" reply. */
const PEER_SAW_DOWN = /(^|,)master_down(,|$)/;

/** A read answered while the lease does not hold: the store answers 503 `store_unavailable`. */
export class MasterLeaseError extends Error {
  constructor() {
    super(
      'no quorum of sentinels vouches for the Redis master now (masterLease): it may be cut off and replaced',
    );
    this.name = 'MasterLeaseError';
  }
}

/** One sentinel, on a connection of ours, and its latest answer. */
interface Link {
  readonly key: string;
  readonly redis: Redis;
  /** `SENTINEL MYID`, or the address when the sentinel cannot say (before Redis 6.2). */
  id: string | undefined;
  asking: boolean;
  said: Said | undefined;
  /** The earliest time its previous answer says it had a PING answered by the master. */
  okBefore: number | undefined;
  /**
   * Since when its answers show no gap of `down-after-milliseconds` between the master's PING
   * replies, so no moment it could have seen the master down (see SDOWN_REMEMBERED_MS).
   */
  upSince: number;
}

/** What one sentinel said of the master, parsed from `SENTINEL MASTER <name>`. */
interface Said {
  /** Local time (performance.now) the question was sent. */
  askedAt: number;
  /** The run id of the master it names; empty until it has read the master's INFO. */
  runId: string;
  flags: string;
  /** It counts a peer's "master is down" reply (PEER_SAW_DOWN): a quorum may be near. */
  peerSawDown: boolean;
  /** It has seen the master up, reporting itself a master, for SDOWN_REMEMBERED_MS at least. */
  proven: boolean;
  /** The configuration epoch of the master it names: a failover raises it. */
  configEpoch: number;
  /** Local time before which this sentinel cannot see the master down. */
  notDownBefore: number;
  downAfter: number;
  sentinels: number;
  quorum: number;
}

/**
 * With Sentinel: how long reads may trust the master this store is connected to. A Sentinel
 * master cut off with the app keeps answering reads, so a session ended on the other side (on
 * the replica the sentinels promote) would still be accepted here for as long as the split
 * lasts. Every `interval` the lease asks each sentinel `SENTINEL MASTER` and `SENTINEL
 * SENTINELS` (each sentinel on its own, so one that does not answer holds up no other): a
 * sentinel that names our master (by run id), sees it up and last had a PING answered by it
 * `last-ok-ping-reply` ms ago cannot see it down before `down-after-milliseconds` minus that.
 * An automatic failover needs `quorum` sentinels to see the master down, so while `sentinels -
 * quorum + 1` of them vouch, none can start before the earliest of their times: the lease holds
 * until then (less a margin), and later answers renew it. A sentinel that saw the master down
 * lately may still be counted by another (Redis keeps such replies 5 s), so a sentinel vouches
 * only once its answers have shown the master up for SDOWN_REMEMBERED_MS (about 6 s at start
 * and after a gap), and any sentinel that sees the master down, counts a peer that did, or
 * takes part in a failover ends the lease, as do a reconnection of the client and a sentinel
 * naming another master. Reads check it when their answer arrives, so an answer the master gave
 * after the lease ran out is never used; the session cache stops answering with it.
 *
 * Not covered (the README says so): a failover that had already begun before the lease was
 * granted, whose leader we cannot reach (it may promote a replica up to `failover-timeout`
 * later); `SENTINEL FAILOVER`, which needs no sentinel to see the master down; a sentinel's
 * `down-after-milliseconds` or `quorum` lowered, until its next answer shows it (then the
 * lease is set from the latest answers alone: see `judge`); wall-clock steps on the sentinels'
 * hosts.
 */
export class MasterLease {
  /** performance.now() before which reads may trust the master. */
  private validUntil = 0;
  /** When the lease was last ended: only answers asked after it vouch. */
  private endedAt = 0;
  private readonly links = new Map<string, Link>();
  private readonly timer: NodeJS.Timeout;
  private warned = false;
  private closed = false;
  /** At every (re)connection of the client, and once its server's run id is known. */
  private readonly serverChanged = () => {
    const server = this.server.current;
    if (server === undefined) this.end('the client (re)connected');
    else if (server.refused !== undefined)
      warnOnce(
        'KOA_JWT_REDIS_MASTER_LEASE_INFO_REFUSED',
        `masterLease: Redis refused INFO server (${server.refused}), which tells the lease which master the client reads; reads answer 503 until it is allowed.`,
      );
    else this.judge();
  };

  constructor(
    private readonly client: Redis,
    /** The server the client's connection is on (its run id names the master it reads). */
    private readonly server: ConnectionServer,
    private readonly options: ResolvedMasterLease,
    /** Longest wait for one answer, in ms (the store's timeout). */
    private readonly timeout: number,
  ) {
    for (const address of client.options.sentinels ?? [])
      this.addLink(address.host ?? '127.0.0.1', address.port ?? 26379);
    server.listen(this.serverChanged);
    this.timer = setInterval(() => this.tick(), options.interval);
    this.timer.unref();
    this.tick();
  }

  /** Whether reads may trust the master now. */
  holds(): boolean {
    return performance.now() < this.validUntil;
  }

  /** Throws MasterLeaseError unless the lease holds: call once a read's answer is in. */
  check(): void {
    if (!this.holds()) throw new MasterLeaseError();
  }

  /** Resolves once the lease holds, or after `ms` (for a readiness check). */
  async settle(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (!this.holds() && !this.closed && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.server.unlisten(this.serverChanged);
    for (const link of this.links.values()) link.redis.disconnect();
    this.links.clear();
    this.end('closed');
  }

  private end(why: string): void {
    if (this.holds()) debug.store('masterLease ended: %s', why);
    this.validUntil = 0;
    this.endedAt = performance.now();
  }

  private tick(): void {
    if (this.closed) return;
    for (const link of this.links.values()) if (!link.asking) void this.ask(link);
  }

  private addLink(host: string, port: number): void {
    const key = `${host}:${port}`;
    if (this.closed || this.links.has(key)) return;
    const given = this.client.options;
    const redis = new Redis({
      host,
      port,
      username: given.sentinelUsername ?? undefined,
      password: given.sentinelPassword ?? undefined,
      // As ioredis connects to sentinels: sentinelTLS, the client's address family.
      ...(given.sentinelTLS ? { tls: given.sentinelTLS } : {}),
      ...(given.family === undefined ? {} : { family: given.family }),
      connectTimeout: Math.min(this.timeout, 2000),
      enableOfflineQueue: false,
      enableReadyCheck: false,
      enableAutoPipelining: false,
      maxRetriesPerRequest: 0,
      keyPrefix: '',
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
      // Flat arrays for SENTINEL's answers; ioredis 5 ignores the option.
      protocol: 2,
    } as RedisOptions);
    // A sentinel that is down only withholds its vouch; a new connection may be another sentinel.
    redis.on('error', () => {});
    redis.on('close', () => {
      const link = this.links.get(key);
      if (link !== undefined) link.id = undefined;
    });
    this.links.set(key, {
      key,
      redis,
      id: undefined,
      asking: false,
      said: undefined,
      okBefore: undefined,
      upSince: Number.POSITIVE_INFINITY,
    });
  }

  /** Asks one sentinel what it knows of the master, then judges again. */
  private async ask(link: Link): Promise<void> {
    if (link.redis.status !== 'ready') return;
    link.asking = true;
    const wait = Math.min(this.timeout, Math.max(this.options.interval * 2, 200));
    try {
      // Its id (asked again on every connection): Redis before 6.2 has no MYID, then the address.
      link.id ??= await bounded(link.redis.call('SENTINEL', 'MYID'), wait, 'Sentinel').then(
        String,
        (error: unknown) => {
          if (error instanceof ReplyError) return link.key;
          throw error;
        },
      );
      const askedAt = performance.now();
      const [master, peers] = await Promise.all([
        bounded(link.redis.call('SENTINEL', 'MASTER', this.name), wait, 'Sentinel'),
        bounded(link.redis.call('SENTINEL', 'SENTINELS', this.name), wait, 'Sentinel'),
      ]);
      const fields = pairs(master);
      const answeredAt = performance.now();
      const peerFields = Array.isArray(peers) ? peers.map(pairs) : [];
      const lastOk = Number(fields.get('last-ok-ping-reply'));
      const downAfter = Number(fields.get('down-after-milliseconds'));
      const others = Number(fields.get('num-other-sentinels'));
      const quorum = Number(fields.get('quorum'));
      if (![lastOk, downAfter, others, quorum].every(Number.isFinite)) return;
      this.checkInterval(downAfter);
      // The master's last PING reply to it came between these two times. A gap of down-after
      // between two replies, or one that may hide in what was not seen, is a moment it could
      // have seen the master down: its record starts again from the later reply.
      const okAfter = askedAt - lastOk;
      const okBy = answeredAt - lastOk;
      const flags = fields.get('flags') ?? '';
      // Seen down, or a master that reports itself a replica or rebooted (SDOWN without a
      // missed PING): as a gap, its record starts again.
      const healthy = flags === HEALTHY_FLAGS && fields.get('role-reported') === 'master';
      if (link.okBefore === undefined || okBy - link.okBefore >= downAfter || !healthy)
        link.upSince = answeredAt;
      link.okBefore = okAfter;
      // Settings that let a failover start sooner than its last answer said: what earlier
      // answers vouched for may no longer hold.
      const before = link.said;
      const sooner =
        before !== undefined &&
        (downAfter < before.downAfter || quorum < before.quorum || others + 1 > before.sentinels);
      link.said = {
        askedAt,
        runId: fields.get('runid') ?? '',
        flags,
        peerSawDown: peerFields.some((peer) => PEER_SAW_DOWN.test(peer.get('flags') ?? '')),
        proven: healthy && answeredAt - link.upSince >= SDOWN_REMEMBERED_MS,
        configEpoch: Number(fields.get('config-epoch') ?? 0) || 0,
        notDownBefore: askedAt + downAfter - lastOk,
        downAfter,
        sentinels: others + 1,
        quorum,
      };
      // Fewer sentinels known than it reports: learn the others from its answer, as ioredis does.
      if (this.links.size < others + 1 && this.client.options.updateSentinels !== false)
        for (const peer of peerFields) this.addPeer(peer);
      this.judge(sooner);
    } catch (error) {
      // No answer: its last one ages out. A refusal (an ACL without SENTINEL MASTER, a wrong
      // name) would leave every read answering 503: say so, once.
      if (error instanceof ReplyError)
        warnOnce(
          'KOA_JWT_REDIS_MASTER_LEASE_REFUSED',
          `masterLease: sentinel ${link.key} refused SENTINEL MYID, MASTER or SENTINELS ${this.name} (${(error as Error).message}); without its answers the lease may not hold, and reads answer 503 then.`,
        );
    } finally {
      link.asking = false;
    }
  }

  /**
   * The lease from the latest answers: ended, extended, or left to run out. `rebase` (a
   * sentinel's settings now let a failover start sooner than when the lease was extended): set
   * from the latest answers alone, even when that shortens or ends it. Where this returns before
   * that, the lease has already been ended (a reconnection of the client, a sentinel naming
   * another master, no answer since the last end).
   */
  private judge(rebase = false): void {
    if (this.closed) return;
    const runId = this.server.current?.runId;
    if (runId === undefined) return;
    const now = performance.now();
    // A sentinel naming another master (by run id, or by a newer configuration than any that
    // names ours: a sentinel that has just switched reports no run id until it has read the
    // new master's INFO), or seeing a failover of ours near, within its down-after-milliseconds:
    // trust nothing until it says otherwise (or has been silent that long), however many
    // others vouch meanwhile.
    let ours = 0;
    for (const { said } of this.links.values())
      if (said?.runId === runId) ours = Math.max(ours, said.configEpoch);
    for (const { said } of this.links.values())
      if (
        said !== undefined &&
        now - said.askedAt < said.downAfter &&
        ((said.runId !== '' && said.runId !== runId) ||
          said.configEpoch > ours ||
          said.peerSawDown ||
          FAILING_OVER.test(said.flags))
      ) {
        this.end('a sentinel names another master, or a failover has begun');
        return;
      }
    const answers: { id: string; said: Said }[] = [];
    for (const link of this.links.values())
      if (link.said !== undefined && link.said.askedAt > this.endedAt)
        answers.push({ id: link.id ?? link.key, said: link.said });
    if (answers.length === 0) return;
    // How many sentinels there are: as many as they report, or as many distinct ones as have
    // answered us (an address that never answers, or a second address of one, counts for none).
    const ids = new Set<string>();
    for (const link of this.links.values()) if (link.id !== undefined) ids.add(link.id);
    const total = Math.max(ids.size, ...answers.map(({ said }) => said.sentinels));
    const quorum = Math.min(...answers.map(({ said }) => said.quorum));
    // Any `quorum` sentinels include one of `needed` vouching ones, none of which can see the
    // master down before the needed-th latest of their times; no failover starts before
    // `quorum` sentinels do.
    const needed = Math.max(1, total - quorum + 1);
    const byId = new Map<string, number>();
    for (const { id, said } of answers)
      if (said.runId === runId && said.flags === HEALTHY_FLAGS && said.proven)
        byId.set(id, Math.max(byId.get(id) ?? 0, said.notDownBefore));
    const times = [...byId.values()].sort((a, b) => b - a);
    if (times.length < needed) {
      if (rebase && this.holds()) {
        debug.store("masterLease ended: a sentinel's settings now let a failover start sooner");
        this.validUntil = 0;
      }
      return;
    }
    const until = times[needed - 1]! - MARGIN_MS;
    if (!this.holds() && until > performance.now())
      debug.store('masterLease holds: %d of %d sentinels vouch', times.length, total);
    if (until > this.validUntil || rebase) this.validUntil = until;
  }

  /**
   * An answer vouches for down-after-milliseconds less the time since the sentinel's last PING
   * reply (up to its 1 s period): that must leave room for the next round. Checked on each
   * answer, not only once the lease holds: with an interval of down-after or more, each gap
   * between answers restarts a sentinel's record, so the lease never holds at all.
   */
  private checkInterval(downAfter: number): void {
    const { interval } = this.options;
    if (this.warned || downAfter - PING_PERIOD_MS - MARGIN_MS >= interval) return;
    this.warned = true;
    const outcome =
      interval >= downAfter
        ? 'the lease can never hold, and every read answers 503'
        : 'reads may answer 503 between rounds';
    warn(
      'KOA_JWT_REDIS_MASTER_LEASE',
      `masterLease: the sentinels' down-after-milliseconds (${downAfter}) leaves less than masterLease.interval (${interval} ms) after their ${PING_PERIOD_MS} ms PING period: ${outcome}. Lower the interval or raise down-after-milliseconds.`,
    );
  }

  /** A sentinel another one names (`SENTINEL SENTINELS`), at its address through `natMap`. */
  private addPeer(peer: Map<string, string>): void {
    const ip = peer.get('ip');
    const port = Number(peer.get('port'));
    if (ip === undefined || !Number.isInteger(port)) return;
    const mapped = natMapped(this.client.options.natMap, `${ip}:${port}`) ?? { host: ip, port };
    this.addLink(mapped.host, mapped.port);
  }

  private get name(): string {
    return this.client.options.name ?? '';
  }
}

/** A flat RESP2 array of names and values, as a map; empty for anything else. */
function pairs(reply: unknown): Map<string, string> {
  const fields = new Map<string, string>();
  if (Array.isArray(reply))
    for (let i = 0; i + 1 < reply.length; i += 2)
      fields.set(String(reply[i]), String(reply[i + 1]));
  return fields;
}
