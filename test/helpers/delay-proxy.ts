import { connect, createServer, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback that holds every chunk from the target back for `delayMs` before passing
 * it on: put on a replication link (replica → proxy → master), it makes a real replication lag.
 * When the target side closes (a killed master), the chunks still held are dropped with it, as
 * bytes in flight are when a machine dies.
 */
export class DelayProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((downstream) => this.pipe(downstream));
  port = 0;

  private constructor(
    private readonly targetPort: number,
    private readonly delayMs: number,
  ) {}

  static async start(targetPort: number, delayMs: number): Promise<DelayProxy> {
    const proxy = new DelayProxy(targetPort, delayMs);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  private pipe(downstream: Socket): void {
    const upstream = connect(this.targetPort, '127.0.0.1');
    this.sockets.add(downstream).add(upstream);
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      downstream.destroy();
      upstream.destroy();
      this.sockets.delete(downstream);
      this.sockets.delete(upstream);
    };
    upstream.on('data', (chunk: Buffer) => {
      setTimeout(() => {
        if (!closed) downstream.write(chunk);
      }, this.delayMs);
    });
    downstream.on('data', (chunk: Buffer) => upstream.write(chunk));
    for (const socket of [upstream, downstream]) {
      socket.on('error', close);
      socket.on('close', close);
    }
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
