import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The redis-server every server of the tests runs (sentinels, Cluster nodes and the harness's
 * own): KJR_TEST_REDIS_SERVER names another binary, as `npm run test:redis6` does for Redis 6.0,
 * else the one on PATH.
 */
export const REDIS_SERVER = process.env.KJR_TEST_REDIS_SERVER || 'redis-server';

export function hasRedisServer(): boolean {
  return spawnSync(REDIS_SERVER, ['--version'], { timeout: 10_000 }).status === 0;
}

/**
 * A Redis version as a release number, major * 100 + minor (700 for 7.0.15), from what `version`
 * captures (major, minor) in `text`; throws, naming `source`, where it matches nothing.
 */
function releaseIn(text: string, version: RegExp, source: string): number {
  const [, major, minor] = version.exec(text) ?? [];
  if (major === undefined) throw new Error(`${source} named no Redis version: ${text}`);
  return Number(major) * 100 + Number(minor);
}

let release: number | undefined;
/** The release of {@link REDIS_SERVER} (see releaseIn), asked once. */
export function redisServerRelease(): number {
  release ??= releaseIn(
    spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout,
    /v=(\d+)\.(\d+)/,
    `${REDIS_SERVER} --version`,
  );
  return release;
}

/** The major version of {@link REDIS_SERVER} (7 for 7.0.15). */
export const redisServerMajor = (): number => Math.floor(redisServerRelease() / 100);

type InfoClient = { info(section: 'server'): Promise<string> };

/** The release of the Redis a client is connected to (see releaseIn; 602 for 6.2.x). */
export async function serverRelease(client: InfoClient): Promise<number> {
  return releaseIn(await client.info('server'), /^redis_version:(\d+)\.(\d+)/m, 'INFO server');
}

/** The major version of the Redis a client is connected to (the harness's may be REDIS_URL's). */
export async function serverMajor(client: InfoClient): Promise<number> {
  return Math.floor((await serverRelease(client)) / 100);
}

/**
 * ACL SETUSER's rule allowing every pub/sub channel on the client's Redis: `&*` from 6.2; 6.0
 * has no channel rules (every channel is allowed) and refuses the rule.
 */
export async function allChannels(client: InfoClient): Promise<string[]> {
  return (await serverRelease(client)) >= 602 ? ['&*'] : [];
}

/**
 * The encoding `OBJECT ENCODING` names for a small hash on the client's Redis: `listpack` from
 * Redis 7, `ziplist` before (the compact encoding either way, which is what the tests check).
 */
export async function compactHashEncoding(client: InfoClient): Promise<string> {
  return (await serverMajor(client)) >= 7 ? 'listpack' : 'ziplist';
}

/**
 * Command-line arguments that make a redis-server (or a sentinel) send its own connections to
 * other nodes (replication, the Cluster bus, a sentinel's links) from `address`, a loopback
 * address other than 127.0.0.1, while it still listens on 127.0.0.1: `bind-source-addr` from
 * Redis 7; Redis 6 sends from its first `bind` address (7 no longer does), so there the address
 * goes first in `bind`. The network-split tests tell the nodes apart by it (see Partition).
 */
export function sendFromArgs(address: string): string[] {
  return redisServerMajor() >= 7
    ? ['--bind-source-addr', address]
    : ['--bind', address, '127.0.0.1'];
}

/**
 * Where a redis-server (or a sentinel) this run starts writes its log, when KJR_TEST_REDIS_LOGS
 * names a directory to keep them in (a failing failover test is read from them); undefined
 * otherwise, and the log goes nowhere.
 */
export function logFile(name: string): string | undefined {
  const dir = process.env.KJR_TEST_REDIS_LOGS;
  return dir ? join(dir, `${name}.log`) : undefined;
}

/** A free TCP port on loopback, as the kernel hands it out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * redis-cli, run without blocking: the app under test (and, in some tests, proxies carrying the
 * servers' own traffic) shares this process's event loop, and a synchronous child process would
 * stall its timers and show up as slow answers. Resolves to the output, errors included, trimmed.
 */
export function redisCli(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      'redis-cli',
      ['-p', String(port), ...args],
      // A frozen (SIGSTOP) server never answers: bounded, so a wait loop's deadline still holds.
      { encoding: 'utf8', timeout: 5_000 },
      (_error, stdout, stderr) => resolve(`${stdout}${stderr}`.trim()),
    );
  });
}

/** PING by redis-cli, without blocking the event loop (tests restart servers under load). */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      'redis-cli',
      ['-p', String(port), 'ping'],
      { encoding: 'utf8', timeout: 2_000 },
      (_error, stdout) => resolve(stdout.trim() === 'PONG'),
    );
  });
}

async function waitForPort(port: number, up: boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const open = await pings(port);
    if (open === up) return;
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} did not ${up ? 'start' : 'stop'} in ${ms} ms`);
}

/**
 * A redis-server this test run owns: its own port and directory, no persistence. Tests may
 * flush, pause, kill and restart it; nothing else is touched.
 */
export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'kjr-redis-'));

  private constructor(
    readonly port: number,
    private extraArgs: string[],
  ) {}

  static async start(extraArgs: string[] = [], port?: number): Promise<RedisServer> {
    const server = new RedisServer(port ?? (await freePort()), extraArgs);
    await server.startProcess();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async startProcess(): Promise<void> {
    // A file per start: a restart on the same port keeps the previous process's log.
    const log = logFile(`${this.port}-${Date.now()}`);
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
      ...this.extraArgs,
      ...(log ? ['--logfile', log] : []),
    ];
    const child = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    await waitForPort(this.port, true);
  }

  /** SIGKILL: the crash case. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /**
   * Starts again on the same port, empty (no persistence; a Cluster node keeps its nodes.conf).
   * `moreArgs` are added to its command line, for this start and the later ones.
   */
  async restart(moreArgs: string[] = []): Promise<void> {
    this.extraArgs = [...this.extraArgs, ...moreArgs];
    await this.kill();
    await this.startProcess();
  }

  /** SIGSTOP / SIGCONT: a Redis that hangs without closing its connections. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
