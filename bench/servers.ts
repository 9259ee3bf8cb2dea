/**
 * A bench target's server (bench/server.ts) as its drivers start, ask and stop it: `npm run bench`
 * (run.ts, pinned to a core) and bench/callgrind.ts (under valgrind).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Target } from './targets.js';

const root = fileURLToPath(new URL('..', import.meta.url));

export interface Running {
  child: ChildProcess;
  port: number;
  control: number;
}

export interface StartOptions {
  /** Wraps the server's command line (a CPU pinning, valgrind). */
  wrap?: (command: string[]) => string[];
  /** Environment on top of this process's and NODE_ENV=production. */
  env?: Record<string, string>;
  /** A server that has not started by then is killed (default 20 s). */
  startTimeoutMs?: number;
}

/**
 * The library warns, in production mode (as the bench runs), that memory-store sessions live in
 * one process. The memory-store targets and bare Koa's token issuer use that store on purpose, so
 * the warning (and Node's `--trace-warnings` hint after a process's first warning) would only
 * break the progress line it lands in; a server's other output is passed on, a line at a time.
 */
const EXPECTED_WARNING = /\[KOA_JWT_REDIS_MEMORY_STORE\]|--trace-warnings/;

function passStderr(child: ChildProcess): void {
  createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', (line) => {
    if (!EXPECTED_WARNING.test(line)) process.stderr.write(`${line}\n`);
  });
}

/** Starts one target's server; resolves once it listens. */
export function startServer(
  target: Target,
  redisUrl: string,
  { wrap = (command) => command, env = {}, startTimeoutMs = 20_000 }: StartOptions = {},
): Promise<Running> {
  const [command, ...args] = wrap([
    process.execPath,
    '--import',
    'tsx',
    'bench/server.ts',
    target,
    redisUrl,
  ]);
  const child = spawn(command!, args, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production', ...env },
  });
  passStderr(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // A server per run: one that hangs at start must not outlive the bench.
      child.kill('SIGKILL');
      reject(new Error(`${target} server did not start in ${startTimeoutMs / 1000} s`));
    }, startTimeoutMs);
    child.once('exit', (code) => reject(new Error(`${target} server exited with ${code}`)));
    child.stdout!.once('data', (line: Buffer) => {
      clearTimeout(timer);
      const { port, control } = JSON.parse(line.toString()) as { port: number; control: number };
      resolve({ child, port, control });
    });
  });
}

/** Tokens from the server's control port: `/access` (for /me) or `/refresh`, for `n` users. */
export async function tokens(
  server: Running,
  path: string,
  n: number,
  attempt = 1,
): Promise<string[]> {
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${server.control}${path}?n=${n}`);
  } catch (error) {
    if (attempt >= 3) throw error;
    return tokens(server, path, n, attempt + 1);
  }
  if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as string[];
}

/** Stops a target's server and waits for it to exit (it closes its store connections first). */
export async function stopServer({ child }: Running): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}
