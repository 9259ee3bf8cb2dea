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
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { RedisServer } from '../test/helpers/redis-server.js';
import { BODY_HEADERS } from './load.js';
import { type Running, startServer, stopServer, tokens } from './servers.js';
import { type Target, TARGET_NAMES, TARGETS } from './targets.js';

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
const { kind } = TARGETS[target];
const dir = `${root}bench/.tmp/callgrind`;
mkdirSync(dir, { recursive: true });
const out = `${dir}/${target}.${Date.now()}.out`;

/**
 * Sends `requests` requests as `npm run bench` does, 8 at a time: /me with the next token, a
 * login of the next user, or a refresh with a refresh token never used before.
 */
async function send(
  server: Running,
  pool: string[],
  agent: Agent,
  requests: number,
): Promise<void> {
  let left = requests;
  let sent = 0;
  const one = (): Promise<void> => {
    const n = sent++;
    const body =
      kind === 'login'
        ? JSON.stringify({ id: `user-${n % USERS}` })
        : kind === 'refresh'
          ? JSON.stringify({ refresh_token: pool.shift() })
          : undefined;
    const headers =
      body === undefined ? { authorization: `Bearer ${pool[n % pool.length]}` } : BODY_HEADERS;
    const options = { host: '127.0.0.1', port: server.port, path: `/${kind}`, agent, headers };
    return new Promise((resolve, reject) => {
      const req = request({ ...options, method: body === undefined ? 'GET' : 'POST' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (res.statusCode !== 200)
            return reject(new Error(`${target}: status ${res.statusCode}`));
          if (kind === 'refresh') {
            const pair = JSON.parse(Buffer.concat(chunks).toString()) as { refresh_token: string };
            pool.push(pair.refresh_token);
          }
          resolve();
        });
      });
      req.once('error', reject);
      req.end(body);
    });
  };
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (left-- > 0) await one();
    }),
  );
}

const redis = await RedisServer.start(['--maxmemory-policy', 'noeviction']);
let server: Running | undefined;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });
try {
  server = await startServer(target, redis.url, {
    wrap: (command) => [
      'valgrind',
      '--tool=callgrind',
      '--quiet',
      // V8 writes and rewrites machine code: valgrind must see every change.
      '--smc-check=all',
      '--instr-atstart=no',
      // CALLGRIND_CACHE_SIM=1: also simulate the caches (D1 and LL misses a request), for work
      // whose cost is memory rather than instructions; about twice as slow. Valgrind sizes the
      // LL from cpuid, which on some VMs reports a 512 MiB L3 (every miss then a cold one):
      // CALLGRIND_LL=<bytes>,<ways>,<line> sets it, e.g. 16777216,16,64 for 16 MiB shared.
      ...(process.env.CALLGRIND_CACHE_SIM === '1'
        ? [
            '--cache-sim=yes',
            ...(process.env.CALLGRIND_LL ? [`--LL=${process.env.CALLGRIND_LL}`] : []),
          ]
        : []),
      `--callgrind-out-file=${out}`,
      ...command,
    ],
    env: { BENCH_STORE_TIMEOUT: '60000', BENCH_MAX_STALENESS: '60000' },
    startTimeoutMs: 180_000,
  });
  const pool =
    kind === 'login' ? [] : await tokens(server, kind === 'me' ? '/access' : '/refresh', USERS);
  const callgrind = (...args: string[]) =>
    execFileSync('callgrind_control', [...args, String(server!.child.pid)], { stdio: 'ignore' });
  await send(server, pool, agent, WARM);
  callgrind('--instr=on');
  await send(server, pool, agent, MEASURE);
  callgrind('--instr=off');
  callgrind('--dump');
} finally {
  agent.destroy();
  if (server !== undefined) await stopServer(server);
  await redis.stop();
}
// The dump holds the counted requests; the file written at exit holds nothing (counting was off).
// With --cache-sim the totals line has every event in the order its `events:` line names them.
const sums = new Map<string, number>();
for (const file of readdirSync(dir).filter((name) => `${dir}/${name}`.startsWith(out))) {
  const text = readFileSync(`${dir}/${file}`, 'latin1');
  const events = /^events: (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? ['Ir'];
  const totals = /^totals: (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  events.forEach((name, i) => sums.set(name, (sums.get(name) ?? 0) + Number(totals[i] ?? 0)));
}
const per = (name: string) => Math.round((sums.get(name) ?? 0) / MEASURE);
const misses = sums.has('D1mr')
  ? `; a request: D1 misses ${per('D1mr') + per('D1mw')}, LL misses ${per('DLmr') + per('DLmw')} (data), ${per('ILmr')} (instructions)`
  : '';
console.log(
  `${target}: ${per('Ir')} instructions per request${misses} (${MEASURE} requests after ${WARM}; ${out}*)`,
);
