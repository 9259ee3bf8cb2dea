import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * Network splits between Redis nodes on one machine. Each node sends its own outgoing
 * connections from an address of its own on loopback (`bind-source-addr 127.0.0.x`) and is
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

  /** Cuts the node at `address` off from every other node. */
  isolate(address: string): void {
    this.isolated.add(address);
    for (const proxy of this.proxies) proxy.enforce();
  }

  heal(): void {
    this.isolated.clear();
  }

  async stop(): Promise<void> {
    await Promise.all(this.proxies.map((proxy) => proxy.stop()));
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

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  private relay(downstream: Socket): void {
    const from = (downstream.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (this.isCut(from, this.nodeAddress)) {
      downstream.destroy();
      return;
    }
    const upstream = connect(this.targetPort, '127.0.0.1');
    const link = { from, sockets: [downstream, upstream] as [Socket, Socket] };
    this.links.add(link);
    const close = (): void => {
      downstream.destroy();
      upstream.destroy();
      this.links.delete(link);
    };
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    for (const socket of link.sockets) {
      socket.on('error', close);
      socket.on('close', close);
    }
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
