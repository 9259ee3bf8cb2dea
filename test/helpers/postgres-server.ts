import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

/** initdb and pg_ctl of the newest PostgreSQL installed under /usr/lib/postgresql, if any. */
function pgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

export const hasPostgresBinaries = (): boolean => pgBin() !== undefined;

/**
 * A PostgreSQL cluster this test owns: initdb in a temp directory, its own port on 127.0.0.1,
 * trust auth. Tests may stop and start it; the machine's shared server is never touched. initdb
 * refuses to run as root, so as root the cluster runs as the `postgres` system user.
 */
export class PostgresServer {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
  ) {}

  static async start(): Promise<PostgresServer> {
    const bin = pgBin();
    if (!bin) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql');
    const dir = mkdtempSync(join(tmpdir(), 'kjr-pg-'));
    chmodSync(dir, 0o777);
    const server = new PostgresServer(await freePort(), dir, bin);
    server.run('initdb', ['-D', server.data, '-U', 'postgres', '-A', 'trust', '--no-sync']);
    server.ctl(['start', '-w', '-t', '30']);
    return server;
  }

  get data(): string {
    return join(this.dir, 'data');
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private run(tool: string, args: string[]): void {
    const asRoot = process.getuid?.() === 0;
    const command = asRoot ? 'runuser' : join(this.bin, tool);
    const argv = asRoot ? ['-u', 'postgres', '--', join(this.bin, tool), ...args] : args;
    const result = spawnSync(command, argv, { encoding: 'utf8', timeout: 60_000 });
    if (result.status !== 0)
      throw new Error(`${tool} failed: ${result.stderr || result.stdout || result.error}`);
  }

  private ctl(args: string[]): void {
    this.run('pg_ctl', [
      '-D',
      this.data,
      '-l',
      join(this.dir, 'log'),
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      ...args,
    ]);
  }

  /** A fast shutdown: connections are closed, the port stops answering. */
  stopServer(): void {
    this.ctl(['stop', '-w', '-m', 'fast']);
  }

  startServer(): void {
    this.ctl(['start', '-w', '-t', '30']);
  }

  async stop(): Promise<void> {
    try {
      this.ctl(['stop', '-w', '-m', 'immediate']);
    } catch {
      // Already stopped.
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
