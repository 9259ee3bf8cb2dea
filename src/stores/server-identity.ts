import { type Redis, ReplyError } from 'ioredis';
import { bounded } from './bounded.js';

/**
 * Which Redis server a connection is on: the server's run id (`INFO server`, new at every start
 * of redis-server), or, where Redis refuses INFO (an ACL), the address the connection reached.
 */
export interface ServerId {
  readonly runId: string | undefined;
  readonly address: string;
  /** Why INFO gave no run id: Redis's refusal, as it worded it. */
  readonly refused?: string | undefined;
}

/**
 * Whether two connections are on one server: by run id where either knows one (so a connection
 * that knows one and one that does not are never taken for the same), else by address. Through a
 * proxy or a DNS name that moves, only the run id tells servers apart.
 */
export function sameServer(a: ServerId, b: ServerId): boolean {
  return a.runId !== undefined || b.runId !== undefined
    ? a.runId === b.runId
    : a.address === b.address;
}

/** Where `redis` is connected now: the socket's remote end, or the Unix socket's path. */
function addressOf(redis: Redis): string {
  const stream = redis.stream as
    { remoteAddress?: string | undefined; remotePort?: number | undefined } | undefined;
  return stream?.remoteAddress === undefined
    ? String(redis.options.path ?? '')
    : `${stream.remoteAddress}:${stream.remotePort}`;
}

/** Redis refusing INFO for good: an ACL, or a proxy that does not forward it. */
const REFUSAL = /^NOPERM|unknown command/i;

/**
 * Asks `redis` which server it is connected to. Rejects when INFO fails otherwise than by being
 * refused (a timeout, a lost connection, `BUSY` behind a long script): the caller asks again.
 */
export async function identify(redis: Redis, ms: number): Promise<ServerId> {
  const address = addressOf(redis);
  try {
    const info = String(await bounded(redis.info('server'), ms, 'Redis'));
    return { runId: /^run_id:([0-9a-f]+)\r?$/m.exec(info)?.[1], address };
  } catch (error) {
    if (!(error instanceof ReplyError) || !REFUSAL.test((error as Error).message)) throw error;
    return { runId: undefined, address, refused: (error as Error).message };
  }
}

/** How long before an INFO that failed (not refused) is asked again. */
const RETRY_MS = 500;
/** How often a refused INFO is asked again on the same connection (the ACL may change). */
const REFUSED_RETRY_MS = 5000;

/**
 * The server a client's own connection is on, asked again at every (re)connection: `current` is
 * undefined from the client's `close` or `ready` until its INFO answers (an answer asked before
 * the latest of them tells nothing). Listeners hear of every change. Used by the master lease
 * (which master the client reads) and the session cache (whether its invalidation feed is on the
 * server the reads go to).
 */
export class ConnectionServer {
  current: ServerId | undefined;
  /** Bumped on every (re)connection of the client. */
  private epoch = 0;
  private asking = false;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly reconnected = () => {
    this.epoch++;
    this.current = undefined;
    // A retry pending was the old connection's; the new one is asked below.
    clearTimeout(this.retry);
    // Told even when it was unknown already: whatever was in flight on the old connection is void.
    this.notify();
    this.ask();
  };

  constructor(
    private readonly client: Redis,
    private readonly timeout: number,
  ) {
    client.on('close', this.reconnected);
    client.on('ready', this.reconnected);
    this.ask();
  }

  /** Calls `listener` on every change of `current`, and at every (re)connection. */
  listen(listener: () => void): void {
    this.listeners.add(listener);
  }

  unlisten(listener: () => void): void {
    this.listeners.delete(listener);
  }

  /** Asks the client's connection, unless it is known, being asked, or not ready. */
  private ask(): void {
    if (this.current === undefined) this.start();
  }

  private start(): void {
    if (this.closed || this.asking || this.client.status !== 'ready') return;
    this.asking = true;
    void this.identify(this.epoch);
  }

  private async identify(epoch: number): Promise<void> {
    let server: ServerId | undefined;
    try {
      server = await identify(this.client, this.timeout);
    } catch {
      // Not answered in time, or the connection went: asked again soon (or at its next ready).
    }
    this.asking = false;
    if (this.closed) return;
    // The client reconnected meanwhile: the answer was the old connection's.
    if (epoch !== this.epoch) return this.ask();
    if (server === undefined)
      return this.later(this.current === undefined ? RETRY_MS : REFUSED_RETRY_MS);
    // Told once refused, and again only when INFO answers after all.
    if (this.current?.refused === undefined || server.refused === undefined) {
      this.current = server;
      this.notify();
    }
    // While refused: asked again now and then on the same connection (the ACL may change), so
    // that its run id, not its address, identifies the server once it is allowed.
    if (server.refused !== undefined) this.later(REFUSED_RETRY_MS);
  }

  private later(ms: number): void {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.start(), ms).unref();
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.client.off('close', this.reconnected);
    this.client.off('ready', this.reconnected);
    this.listeners.clear();
  }
}
