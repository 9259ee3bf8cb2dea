import { Redis } from 'ioredis';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DelayProxy } from './delay-proxy.js';
import {
  freePort,
  logFile,
  REDIS_SERVER,
  redisCli as cli,
  RedisServer,
  sendFromArgs,
} from './redis-server.js';

export const MASTER_NAME = 'mymaster';

/** The address the `replicaWithMaster` replica sends from (see sendFromArgs). */
const WITH_MASTER_ADDRESS = '127.0.0.60';

/**
 * The sentinels' down-after-milliseconds unless a test sets its own: twice their PING period
 * (which is 1 s, or down-after if that is shorter). A sentinel that switches to a new master
 * starts that master's clock at once, but may connect and send it a first PING up to a period
 * later (it reconnects a link at most once a period). With down-after at 1 s, a PONG a few
 * milliseconds late then made the new master subjectively down, and the three sentinels failed
 * over again, to the old master just restarted empty as its replica: 2 runs in about 30 of the
 * 250 ms kill test. Read from the sentinels' logs: +switch-master, then +sdown of the new master
 * 1,003 ms later and -sdown 78 ms after that, too late to stop the second failover.
 */
export const DOWN_AFTER_MS = 2000;

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

/** Whether a node's INFO replication names `masterPort` as its master (the whole number). */
const masterPortIs = (info: string, masterPort: number): boolean =>
  new RegExp(`^master_port:${masterPort}\\b`, 'm').test(info);

/** Whether a node's INFO replication shows it a replica of `masterPort` with its link up. */
const replicatesFrom = (info: string, masterPort: number): boolean =>
  /role:slave/.test(info) && masterPortIs(info, masterPort) && /master_link_status:up/.test(info);

async function every<T>(items: T[], check: (item: T) => Promise<boolean>): Promise<boolean> {
  return (await Promise.all(items.map(check))).every(Boolean);
}

/** One `redis-server --sentinel` with its own config file (Sentinel rewrites it) and directory. */
class SentinelProcess {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'kjr-sentinel-'));

  private constructor(readonly port: number) {}

  static async start(masterPort: number, downAfterMs: number): Promise<SentinelProcess> {
    const sentinel = new SentinelProcess(await freePort());
    const config = join(sentinel.dir, 'sentinel.conf');
    const log = logFile(`sentinel-${sentinel.port}`);
    writeFileSync(
      config,
      [
        `port ${sentinel.port}`,
        'bind 127.0.0.1',
        `dir ${sentinel.dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
        // A master that does not answer for this long is down; failovers may follow each other quickly.
        `sentinel down-after-milliseconds ${MASTER_NAME} ${downAfterMs}`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        ...(log ? [`logfile "${log}"`] : []),
        '',
      ].join('\n'),
    );
    sentinel.child = spawn(REDIS_SERVER, [config, '--sentinel'], { stdio: 'ignore' });
    await until(
      `sentinel on port ${sentinel.port} to start`,
      10_000,
      async () => (await cli(sentinel.port, 'ping')) === 'PONG',
    );
    return sentinel;
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the process: it keeps its connections and answers nothing while frozen. */
  freeze(frozen: boolean): void {
    this.child?.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A Sentinel setup this test run owns, on free loopback ports: one master, one replica and three
 * sentinels (quorum 2). With `replicationDelayMs`, the replica reaches the master through a
 * {@link DelayProxy}, so replication really lags by that much.
 */
export class SentinelSetup {
  /** Every redis-server started, current or not, so stop() ends them all. */
  private readonly servers: RedisServer[] = [];
  private readonly sentinelProcesses: SentinelProcess[] = [];
  private proxy: DelayProxy | undefined;
  /** The replica that reaches the master through the proxy, if there is one. */
  private lagged: RedisServer | undefined;
  /** With `splittable`: the master's own port, which the sentinels and the replica reach through the proxy. */
  private behindProxy: number | undefined;
  /**
   * With `appOnMasterSide`: the proxies the app reaches each sentinel and the replica through,
   * by the address the sentinels give for it (`127.0.0.1:<port>`); a split cuts them too.
   */
  private readonly appProxies = new Map<string, DelayProxy>();
  /** With `replicaWithMaster`: the proxy the sentinels reach that replica through; a split cuts it. */
  private withMasterProxy: DelayProxy | undefined;
  /** With `replicaWithMaster`: that replica's own port. */
  private withMasterPort: number | undefined;

  private constructor() {}

  /**
   * `splittable`: the replica and the sentinels reach the master only through a proxy (the
   * sentinels monitor the proxy's address), so that `split` cuts the master off from them while
   * an app pointed at the master itself (with {@link natMap}) still reaches it.
   * `appOnMasterSide` (with `splittable`): the app reaches the sentinels and the replica through
   * proxies of their own (in {@link natMap}), which `split` cuts as well, so the app is left
   * with the old master only, cut off from the side that elects the new one.
   * `replicaWithMaster` (with `splittable`): a second replica, on the master's side of a split.
   * It replicates through the master's proxy from an address of its own, which `split` leaves
   * connected, and announces a proxy of its own as its address, so the sentinels reach it only
   * through that proxy, which `split` cuts: the split leaves the master with a replica that can
   * confirm its writes, and the sentinels with the other one.
   */
  static async start(
    options: {
      replicationDelayMs?: number;
      downAfterMs?: number;
      splittable?: boolean;
      appOnMasterSide?: boolean;
      replicaWithMaster?: boolean;
    } = {},
  ): Promise<SentinelSetup> {
    const setup = new SentinelSetup();
    try {
      // The replica left with the master sends from WITH_MASTER_ADDRESS, which protected mode
      // refuses (it lets in 127.0.0.1 only): off, on servers listening on 127.0.0.1 alone.
      const open = options.replicaWithMaster ? ['--protected-mode', 'no'] : [];
      const master = await setup.server(open);
      let upstream = master.port;
      if (options.replicationDelayMs !== undefined || options.splittable) {
        setup.proxy = await DelayProxy.start(master.port, options.replicationDelayMs ?? 0);
        upstream = setup.proxy.port;
      }
      const replica = await setup.server([...open, '--replicaof', '127.0.0.1', String(upstream)]);
      if (options.splittable) setup.behindProxy = master.port;
      else if (setup.proxy) setup.lagged = replica;
      await until('the replica to sync', 20_000, async () =>
        /master_link_status:up/.test(await cli(replica.port, 'info', 'replication')),
      );
      // Known to the sentinels (from the master's INFO) by the address it announces.
      const replicaPorts = [replica.port];
      if (options.splittable && options.replicaWithMaster) {
        // It replicates through the master's proxy, as the sentinels expect of a replica of the
        // master they monitor (they would point it there), but from an address of its own,
        // which the split keeps.
        const second = await setup.server([...open, ...sendFromArgs(WITH_MASTER_ADDRESS)]);
        setup.withMasterProxy = await DelayProxy.start(second.port, 0);
        setup.withMasterPort = second.port;
        await cli(
          second.port,
          'config',
          'set',
          'replica-announce-port',
          String(setup.withMasterProxy.port),
        );
        await cli(second.port, 'replicaof', '127.0.0.1', String(upstream));
        await until('the second replica to sync', 20_000, async () =>
          /master_link_status:up/.test(await cli(second.port, 'info', 'replication')),
        );
        replicaPorts.push(setup.withMasterProxy.port);
      }
      for (let i = 0; i < 3; i++)
        setup.sentinelProcesses.push(
          await SentinelProcess.start(
            options.splittable ? upstream : master.port,
            options.downAfterMs ?? DOWN_AFTER_MS,
          ),
        );
      // Sentinels find the replica from the master's INFO and each other by hello messages.
      await until('the sentinels to know the replica and each other', 30_000, () =>
        every(setup.sentinelProcesses, async (s) => {
          const replicas = await cli(s.port, 'sentinel', 'replicas', MASTER_NAME);
          const peers = await cli(s.port, 'sentinel', 'sentinels', MASTER_NAME);
          return (
            replicaPorts.every((port) => replicas.includes(String(port))) &&
            !/s_down|disconnected/.test(replicas) &&
            (peers.match(/^name$/gm) ?? []).length === 2
          );
        }),
      );
      if (options.splittable && options.appOnMasterSide)
        for (const port of [replica.port, ...setup.sentinelProcesses.map((s) => s.port)])
          setup.appProxies.set(`127.0.0.1:${port}`, await DelayProxy.start(port, 0));
      return setup;
    } catch (error) {
      await setup.stop();
      throw error;
    }
  }

  private async server(args: string[], port?: number): Promise<RedisServer> {
    const server = await RedisServer.start(args, port);
    this.servers.push(server);
    return server;
  }

  /** Sentinel addresses, in the shape ioredis and the `redis` option take. */
  get sentinels(): { host: string; port: number }[] {
    return this.sentinelProcesses.map((s) => ({ host: '127.0.0.1', port: s.port }));
  }

  /** The sentinels' addresses as the app reaches them: through their proxies with `appOnMasterSide`. */
  get appSentinels(): { host: string; port: number }[] {
    return this.sentinels.map((s) => {
      const proxy = this.appProxies.get(`${s.host}:${s.port}`);
      return proxy ? { host: '127.0.0.1', port: proxy.port } : s;
    });
  }

  /** With `replicaWithMaster`: the port of the replica left on the master's side of a split. */
  get replicaWithMasterPort(): number {
    if (this.withMasterPort === undefined) throw new Error('no replica with the master');
    return this.withMasterPort;
  }

  /** With `splittable`: the first master's own port (the sentinels know it by the proxy's). */
  get splitMasterPort(): number {
    if (this.behindProxy === undefined) throw new Error('not a splittable setup');
    return this.behindProxy;
  }

  /**
   * With `splittable`: ioredis's `natMap`, which takes the app from the address the sentinels
   * give for the first master (the proxy) to the master itself, so a split leaves the app with it.
   * With `appOnMasterSide`, it also takes the app from each sentinel's and the replica's address
   * to the proxy that the split cuts. ioredis maps the sentinels it discovers through it as well.
   */
  get natMap(): Record<string, { host: string; port: number }> {
    const map: Record<string, { host: string; port: number }> = {
      [`127.0.0.1:${this.proxy!.port}`]: { host: '127.0.0.1', port: this.splitMasterPort },
    };
    for (const [address, proxy] of this.appProxies)
      map[address] = { host: '127.0.0.1', port: proxy.port };
    return map;
  }

  /**
   * A network split: the first master cut off from its replica and the sentinels (see
   * `splittable`), and with `appOnMasterSide` the app cut off from them too.
   */
  split(): void {
    if (this.behindProxy === undefined) throw new Error('not a splittable setup');
    // Only the replica left with the master (if any) sends from WITH_MASTER_ADDRESS.
    this.proxy!.cut((address) => address === WITH_MASTER_ADDRESS);
    this.withMasterProxy?.cut();
    for (const proxy of this.appProxies.values()) proxy.cut();
  }

  /** Ends the split: the sentinels and the replica reach the first master again, and the app them. */
  heal(): void {
    this.proxy!.heal();
    this.withMasterProxy?.heal();
    for (const proxy of this.appProxies.values()) proxy.heal();
  }

  /**
   * Stops the sentinel at `index` (0 to 2) for good, and leaves it out from then on (`sentinels`
   * too); the others go on with their quorum of 2.
   */
  async stopSentinel(index: number): Promise<void> {
    const [stopped] = this.sentinelProcesses.splice(index, 1);
    await stopped?.stop();
  }

  /** Sends a command to every running sentinel (SENTINEL SET, ACL SETUSER); throws on an error reply. */
  async toEverySentinel(...args: string[]): Promise<void> {
    for (const { port } of this.sentinelProcesses) {
      const sentinel = new Redis({ port, lazyConnect: true });
      try {
        await sentinel.call(...(args as [string, ...string[]]));
      } finally {
        sentinel.disconnect();
      }
    }
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the sentinel at `index`: frozen, it answers nobody. */
  freezeSentinel(index: number, frozen: boolean): void {
    this.sentinelProcesses[index]!.freeze(frozen);
  }

  /** The master's port as the sentinels see it now. */
  async masterPort(sentinel = this.sentinelProcesses[0]!.port): Promise<number> {
    const answer = await cli(sentinel, 'sentinel', 'get-master-addr-by-name', MASTER_NAME);
    return Number(answer.split('\n')[1]);
  }

  /** The running redis-server on `port`. */
  serverOn(port: number): RedisServer {
    const server = this.servers.findLast((s) => s.port === port);
    if (!server) throw new Error(`no redis-server of this setup on port ${port}`);
    return server;
  }

  /** Whether the node on `port` answers and has the given role. */
  static async role(port: number): Promise<string> {
    return /role:(\w+)/.exec(await cli(port, 'info', 'replication'))?.[1] ?? 'down';
  }

  /** A planned failover: the sentinels promote the replica. Resolves when every sentinel names the new master. */
  async failover(): Promise<number> {
    const old = await this.masterPort();
    const answer = await cli(this.sentinelProcesses[0]!.port, 'sentinel', 'failover', MASTER_NAME);
    if (answer !== 'OK') throw new Error(`SENTINEL FAILOVER answered ${answer}`);
    return this.waitForNewMaster(old);
  }

  /** Resolves with the new master's port once every sentinel names another master than `old`. */
  async waitForNewMaster(old: number, ms = 30_000): Promise<number> {
    await until('the sentinels to name a new master', ms, () =>
      every(this.sentinelProcesses, async (s) => {
        const port = await this.masterPort(s.port);
        return port !== old && (await SentinelSetup.role(port)) === 'master';
      }),
    );
    return this.masterPort();
  }

  /**
   * Makes sure the replica still reaches the master through the delay proxy, as a test that
   * kills the master means it to. Once they have known the replica for about 10 s (their first
   * periodic INFO of it after 5 s), the sentinels "fix" a replica whose master address is not
   * the master they monitor: they point it straight at the master, and the lag is gone (their
   * logs say +fix-slave-config). The kill tests kill 4 to 9.2 s after the sentinels first see
   * the replica on this 2-core VM (64 runs), so a slower machine could kill after the fix.
   * Pointed back at the proxy, the replica goes on from where it was (a partial resync).
   * Returns whether it had to be pointed back.
   */
  async ensureLagging(): Promise<boolean> {
    const replica = this.lagged;
    const proxyPort = this.proxy?.port;
    if (!replica || proxyPort === undefined) return false;
    if (masterPortIs(await cli(replica.port, 'info', 'replication'), proxyPort)) return false;
    await cli(replica.port, 'replicaof', '127.0.0.1', String(proxyPort));
    await until('the replica to sync through the delay proxy again', 20_000, async () =>
      replicatesFrom(await cli(replica.port, 'info', 'replication'), proxyPort),
    );
    return true;
  }

  /** Restarts a killed node, empty, as a replica of the current master (as an operator would). */
  async restartAsReplica(port: number): Promise<void> {
    await this.serverOn(port).kill();
    const master = await this.masterPort();
    const server = await this.server(['--replicaof', '127.0.0.1', String(master)], port);
    await until('the restarted replica to sync', 20_000, async () =>
      /master_link_status:up/.test(await cli(server.port, 'info', 'replication')),
    );
  }

  /** Waits until the node on `port` replicates the current master with its link up. */
  async waitForReplica(port: number, ms = 30_000): Promise<void> {
    await until(`node ${port} to replicate the new master`, ms, async () =>
      replicatesFrom(await cli(port, 'info', 'replication'), await this.masterPort()),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.sentinelProcesses.map((s) => s.stop()));
    await this.proxy?.stop();
    await this.withMasterProxy?.stop();
    await Promise.all([...this.appProxies.values()].map((proxy) => proxy.stop()));
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}
