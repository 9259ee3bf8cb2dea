import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { timeout: 10_000 }).status === 0;
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
    private readonly extraArgs: string[],
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
    const child = spawn('redis-server', args, { stdio: 'ignore' });
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

  /** Starts again on the same port, empty (no persistence). */
  async restart(): Promise<void> {
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
