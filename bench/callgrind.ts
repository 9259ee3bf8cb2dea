/**
 * Instructions per request of one bench target, counted by valgrind's callgrind: the same count
 * for the same work however busy the machine is, where req/s and CPU time on a shared VM move by
 * ±10 % between runs. `npx tsx bench/callgrind.ts <target>` starts the target's server
 * (bench/server.ts) under callgrind with counting off, sends CALLGRIND_WARM requests (default
 * 12,000) from this process over 8 keep-alive connections, counts the next CALLGRIND_MEASURE
 * (default 6,000), and prints the count divided by them. Fewer warm-up requests leave V8's
 * compiling in the count: a refresh counted 559k instructions after 6,000, 476k to 491k after
 * 12,000. A run's total moves by about ±150 instructions a `/me` request and ±3 % a login or
 * refresh (when a major GC falls inside the counted requests). The profile is left in
 * bench/.tmp/callgrind/ for `callgrind_annotate`. Needs valgrind (`apt-get install valgrind`);
 * takes one to three minutes per target.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RedisServer } from '../test/helpers/redis-server.js';
import { USER_AGENT } from './load.js';
import { serverCommand, type Target, TARGET_NAMES } from './targets.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const target = process.argv[2] as Target;
if (!TARGET_NAMES.includes(target))
  throw new Error(`usage: callgrind.ts <${TARGET_NAMES.join('|')}>`);
if (spawnSync('valgrind', ['--version']).status !== 0)
  throw new Error('callgrind.ts needs valgrind: apt-get install valgrind');
const count = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const WARM = count('CALLGRIND_WARM', 12_000);
const MEASURE = count('CALLGRIND_MEASURE', 6_000);
const USERS = count('CALLGRIND_USERS', 2_000);
const kind = /login/.test(target) ? 'login' : /refresh/.test(target) ? 'refresh' : 'me';
const dir = `${root}bench/.tmp/callgrind`;
mkdirSync(dir, { recursive: true });
const out = `${dir}/${target}.${Date.now()}.out`;

/** Starts the target's server under callgrind, counting off; resolves once it listens. */
function startServer(
  redisUrl: string,
): Promise<{ server: ChildProcess; port: number; control: number }> {
  const server = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--quiet',
      // V8 writes and rewrites machine code: valgrind must see every change.
      '--smc-check=all',
      '--instr-atstart=no',
      `--callgrind-out-file=${out}`,
      ...serverCommand(target, redisUrl),
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_ENV: 'production', BENCH_STORE_TIMEOUT: '60000' },
    },
  );
  return new Promise((resolve, reject) => {
    server.once('exit', (code) => reject(new Error(`${target} server exited with ${code}`)));
    createInterface({ input: server.stdout! }).once('line', (line) => {
      const { port, control } = JSON.parse(line) as { port: number; control: number };
      resolve({ server, port, control });
    });
  });
}

/** Sends requests as `npm run bench` does: /me with the next token, a login, or a refresh. */
async function drive(port: number, control: number, phases: (() => void)[]): Promise<void> {
  const tokens: string[] =
    kind === 'login'
      ? []
      : ((await (
          await fetch(
            `http://127.0.0.1:${control}/${kind === 'me' ? 'access' : 'refresh'}?n=${USERS}`,
          )
        ).json()) as string[]);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let sent = 0;
  const send = (): Promise<void> => {
    const n = sent++;
    const body =
      kind === 'login'
        ? JSON.stringify({ id: `user-${n % USERS}` })
        : kind === 'refresh'
          ? JSON.stringify({ refresh_token: tokens.shift() })
          : undefined;
    const headers: Record<string, string> =
      body === undefined
        ? { authorization: `Bearer ${tokens[n % tokens.length]}` }
        : { 'content-type': 'application/json', 'user-agent': USER_AGENT };
    return new Promise((resolve, reject) => {
      const path = kind === 'me' ? '/me' : '/';
      const method = body === undefined ? 'GET' : 'POST';
      const req = request({ host: '127.0.0.1', port, path, method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (res.statusCode !== 200)
            return reject(new Error(`${target}: status ${res.statusCode}`));
          if (kind === 'refresh') {
            const pair = JSON.parse(Buffer.concat(chunks).toString()) as { refresh_token: string };
            tokens.push(pair.refresh_token);
          }
          resolve();
        });
      });
      req.once('error', reject);
      req.end(body);
    });
  };
  const run = async (requests: number) => {
    let left = requests;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (left-- > 0) await send();
      }),
    );
  };
  try {
    await run(WARM);
    phases[0]!();
    await run(MEASURE);
    phases[1]!();
  } finally {
    agent.destroy();
  }
}

const redis = await RedisServer.start(['--maxmemory-policy', 'noeviction']);
let started: { server: ChildProcess; port: number; control: number } | undefined;
try {
  started = await startServer(redis.url);
  const pid = String(started.server.pid);
  const callgrind = (...args: string[]) =>
    execFileSync('callgrind_control', [...args, pid], { stdio: 'ignore' });
  await drive(started.port, started.control, [
    () => callgrind('--instr=on'),
    () => {
      callgrind('--instr=off');
      callgrind('--dump');
    },
  ]);
} finally {
  const server = started?.server;
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  await redis.stop();
}
// The dump holds the counted requests; the file written at exit holds nothing (counting was off).
let instructions = 0;
for (const file of readdirSync(dir).filter((name) => `${dir}/${name}`.startsWith(out))) {
  const totals = /^totals: (\d+)/m.exec(readFileSync(`${dir}/${file}`, 'latin1'));
  instructions += Number(totals?.[1] ?? 0);
}
console.log(
  `${target}: ${Math.round(instructions / MEASURE)} instructions per request (${MEASURE} requests after ${WARM}; ${out}*)`,
);
