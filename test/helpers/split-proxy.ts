import { connect, createServer, type Server, type Socket } from 'node:net';
import { clientAddress, listenOnLoopback } from './delay-proxy.js';

/**
 * Network splits between Redis nodes on one machine. Each node sends its own outgoing
 * connections from an address of its own on loopback (127.0.0.x: see sendFromArgs) and is
 * reached by the others only through a proxy of this partition (its announced ports), which
 * tells the connecting node by that source address. `isolate(address)` then cuts every
 * connection between that node and the others, both ways, and refuses new ones until `heal`;
 * clients on 127.0.0.1 (the app, redis-cli) go on reaching every node.
 */
export class Partition {
  private readonly proxies: SplitProxy[] = [];
  private readonly isolated = new Set<string>();

  /** A proxy to `targetPort` for the node whose own address is `nodeAddress`. */
  async proxy(targetPort: number, nodeAddress: string): Promise<number> {
    const proxy = new SplitProxy(targetPort, nodeAddress, (from, to) => this.cut(from, to));
    await proxy.listen();
    this.proxies.push(proxy);
    return proxy.port;
  }

  /** Whether a connection from the address `from` to the node at `to` is cut. */
  private cut(from: string, to: string): boolean {
    const node = from !== '127.0.0.1' && from.startsWith('127.');
    return node && this.isolated.has(from) !== this.isolated.has(to);
  }

  /**
   * Cuts the nodes at `addresses` (and clients relayed from them, see {@link SourceRelay}) off
   * from every other node; they still reach each other.
   */
  isolate(...addresses: string[]): void {
    for (const address of addresses) this.isolated.add(address);
    for (const proxy of this.proxies) proxy.enforce();
  }

  heal(): void {
    this.isolated.clear();
  }

  async stop(): Promise<void> {
    await Promise.all(this.proxies.map((proxy) => proxy.stop()));
  }
}

/** Relays two sockets both ways; when either closes or fails, both are destroyed and `closed` runs. */
function join(a: Socket, b: Socket, closed: () => void): void {
  const close = (): void => {
    a.destroy();
    b.destroy();
    closed();
  };
  a.pipe(b);
  b.pipe(a);
  for (const socket of [a, b]) {
    socket.on('error', close);
    socket.on('close', close);
  }
}

/** One node's port behind the partition: a plain TCP relay that drops what the partition cuts. */
class SplitProxy {
  private readonly links = new Set<{ from: string; sockets: [Socket, Socket] }>();
  private readonly server: Server;
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly nodeAddress: string,
    private readonly isCut: (from: string, to: string) => boolean,
  ) {
    this.server = createServer((downstream) => this.relay(downstream));
  }

  async listen(): Promise<void> {
    this.port = await listenOnLoopback(this.server);
  }

  private relay(downstream: Socket): void {
    const from = clientAddress(downstream);
    if (this.isCut(from, this.nodeAddress)) {
      downstream.destroy();
      return;
    }
    const upstream = connect(this.targetPort, '127.0.0.1');
    const link = { from, sockets: [downstream, upstream] as [Socket, Socket] };
    this.links.add(link);
    join(downstream, upstream, () => this.links.delete(link));
  }

  /** Closes the connections the partition now cuts. */
  enforce(): void {
    for (const link of this.links)
      if (this.isCut(link.from, this.nodeAddress))
        for (const socket of link.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    for (const link of this.links) for (const socket of link.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A client that the partition counts as a node: a relay on 127.0.0.1 to one of its proxies,
 * connecting from `sourceAddress`, so that isolating that address cuts the client off too.
 * The app reaches a node through it by ioredis's `natMap` (the node's announced address to the
 * relay's); ioredis itself cannot choose a source address.
 */
export class SourceRelay {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  port = 0;

  private constructor(
    private readonly targetPort: number,
    private readonly sourceAddress: string,
  ) {
    this.server = createServer((downstream) => {
      const upstream = connect({
        port: this.targetPort,
        host: '127.0.0.1',
        localAddress: this.sourceAddress,
      });
      this.sockets.add(downstream).add(upstream);
      join(downstream, upstream, () => {
        this.sockets.delete(downstream);
        this.sockets.delete(upstream);
      });
    });
  }

  static async start(targetPort: number, sourceAddress: string): Promise<SourceRelay> {
    const relay = new SourceRelay(targetPort, sourceAddress);
    relay.port = await listenOnLoopback(relay.server);
    return relay;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
