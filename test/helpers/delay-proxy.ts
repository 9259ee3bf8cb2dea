import { connect, createServer, type Server, type Socket } from 'node:net';

/** Starts `server` listening on a free port of 127.0.0.1, and answers the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as { port: number }).port;
}

/** The address a connection came from, as IPv4 (without the `::ffff:` of a dual-stack socket). */
export const clientAddress = (socket: Socket): string =>
  (socket.remoteAddress ?? '').replace(/^::ffff:/, '');

/**
 * A TCP proxy on loopback that holds every chunk from the target back for `delayMs` before passing
 * it on: put on a replication link (replica → proxy → master), it makes a real replication lag.
 * When the target side closes (a killed master), the chunks still held are dropped with it, as
 * bytes in flight are when a machine dies.
 */
export class DelayProxy {
  private readonly sockets = new Set<Socket>();
  /** Each socket's client address: the downstream side's remote address, for both sides. */
  private readonly clientOf = new WeakMap<Socket, string>();
  /** Connections gone silent (see `silence`), by the local port of their side towards the target. */
  private readonly silent = new Set<number>();
  /** While cut (see `cut`), every new connection is closed at once, but those `kept`. */
  private isCut = false;
  /** The target of the next connection only (see `retargetNext`). */
  private nextTarget: number | undefined;
  private kept: (address: string) => boolean = () => false;
  private readonly server = createServer((downstream) =>
    this.isCut && !this.keeps(downstream) ? downstream.destroy() : this.pipe(downstream),
  );
  port = 0;

  private constructor(
    private targetPort: number,
    private readonly delayMs: number,
  ) {}

  static async start(targetPort: number, delayMs: number): Promise<DelayProxy> {
    const proxy = new DelayProxy(targetPort, delayMs);
    proxy.port = await listenOnLoopback(proxy.server);
    return proxy;
  }

  private pipe(downstream: Socket): void {
    const upstream = connect(this.nextTarget ?? this.targetPort, '127.0.0.1');
    this.nextTarget = undefined;
    this.sockets.add(downstream).add(upstream);
    const client = clientAddress(downstream);
    this.clientOf.set(downstream, client);
    this.clientOf.set(upstream, client);
    // Known once connected, and kept: a destroyed socket no longer reports it.
    let port = -1;
    upstream.once('connect', () => (port = upstream.localPort ?? -1));
    const mute = () => this.silent.has(port);
    let closed = false;
    const close = (): void => {
      // A silenced connection's client side stays open, hearing nothing (see `silence`).
      if (closed || mute()) return;
      closed = true;
      downstream.destroy();
      upstream.destroy();
      this.sockets.delete(downstream);
      this.sockets.delete(upstream);
    };
    upstream.on('data', (chunk: Buffer) => {
      setTimeout(() => {
        if (!closed && !mute()) downstream.write(chunk);
      }, this.delayMs);
    });
    downstream.on('data', (chunk: Buffer) => {
      if (!mute()) upstream.write(chunk);
    });
    for (const socket of [upstream, downstream]) {
      socket.on('error', close);
      socket.on('close', close);
    }
  }

  /**
   * The local ports of the proxy's connections to the target: the target sees each client as
   * 127.0.0.1 and one of these (in CLIENT LIST's `addr`).
   */
  targetSidePorts(): number[] {
    return [...this.sockets]
      .filter((socket) => socket.remotePort === this.targetPort)
      .map((socket) => socket.localPort!);
  }

  /**
   * Ends the connection whose target side is on `port` at the target (which sees it close), while
   * its client side stays open and hears nothing: a middlebox that dropped the connection, or a
   * close whose packets were lost.
   */
  silence(port: number): void {
    this.silent.add(port);
    for (const socket of this.sockets) if (socket.localPort === port) socket.destroy();
  }

  /**
   * A network split between the proxy's clients and its target: every connection through it
   * closes, on both sides, and new ones are closed as they come, until `heal`, but those of a
   * client whose address `kept` accepts (one on the target's side of the split). The target's
   * other clients (those that reach it directly) are not affected.
   */
  cut(kept: (address: string) => boolean = () => false): void {
    this.isCut = true;
    this.kept = kept;
    for (const socket of this.sockets) if (!this.keeps(socket)) socket.destroy();
  }

  /**
   * Whether a split leaves the connection `socket` belongs to alone: its client's address (a
   * node sending from an address of its own, see sendFromArgs) is one `cut` was told to keep.
   */
  private keeps(socket: Socket): boolean {
    return this.kept(this.clientOf.get(socket) ?? clientAddress(socket));
  }

  /**
   * New connections go to `targetPort` from now on; those open stay where they are (a DNS name
   * moved to another server, which clients follow only as they reconnect).
   */
  retarget(targetPort: number): void {
    this.targetPort = targetPort;
  }

  /**
   * The next new connection, and only it, goes to `targetPort`: a name that answers one client
   * with a new server while others still get the old one (Sentinels that have not all switched).
   */
  retargetNext(targetPort: number): void {
    this.nextTarget = targetPort;
  }

  /** Ends the split: new connections reach the target again. */
  heal(): void {
    this.isCut = false;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
