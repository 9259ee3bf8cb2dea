/**
 * The load generator, in its own process: `tsx bench/load.ts -` with a JSON job on stdin. Drives one target
 * for a bounded time and prints one JSON line with the result. GET /me runs use wrk when it is installed
 * (a C load generator: autocannon, in JavaScript, saturates its own core before a bare Koa server
 * does, which caps every ratio); login and refresh, whose bodies change per request, use autocannon.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';

/** Which generator drives GET /me: wrk when on PATH, unless BENCH_LOADER=autocannon. */
export const meLoader: 'wrk' | 'autocannon' =
  process.env.BENCH_LOADER !== 'autocannon' && spawnSync('wrk', ['--version']).error === undefined
    ? 'wrk'
    : 'autocannon';

export interface LoadJob {
  url: string;
  /** The target's control server, asked for its CPU time before and after the measured run. */
  controlUrl: string;
  /** The Redis every Redis target uses, asked for its CPU time before and after the measured run. */
  redisUrl: string;
  /** GET /me with these bearer tokens in turn, or POST /login, or POST /refresh with these refresh tokens. */
  kind: 'me' | 'login' | 'refresh';
  tokens: string[];
  connections: number;
  seconds: number;
  /** Unmeasured run first, so the JIT and the connection pools are warm. */
  warmupSeconds: number;
  /** Fresh refresh tokens for the warm-up run (refresh tokens work once). */
  warmupTokens: string[];
  /** Login: how many distinct user ids the requests cycle through, from a random offset. */
  users: number;
  /** Where the server writes a CPU profile of the measured run (BENCH_PROFILE=1). */
  profile?: string;
}

/** What a browser sends on login and refresh; the library records it, the hand-written server ignores it. */
const USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
/** The headers of a login's and a refresh's request (bodies in JSON, from a browser). */
export const BODY_HEADERS = { 'content-type': 'application/json', 'user-agent': USER_AGENT };

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** Server CPU time (user + system) per answered request, in µs. */
  cpuPerRequest: number;
  /**
   * Redis CPU time (user + system, all its threads) per answered request, in µs: on a machine of
   * two cores it competes with the server and the load generator, so it weighs on req/s too.
   */
  redisCpuPerRequest: number;
}

async function serverCpu(job: LoadJob): Promise<number> {
  return (await (await fetch(`${job.controlUrl}/cpu`)).json()) as number;
}

/** Redis's CPU time so far (INFO cpu: used_cpu_user + used_cpu_sys), in µs. */
async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
  return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6;
}

/**
 * Runs the measured part of a job: the server's and Redis's CPU time around it, and its profile
 * when the job asks for one (BENCH_PROFILE=1).
 */
async function measured<T>(
  job: LoadJob,
  run: () => Promise<T>,
): Promise<{ out: T; cpu: number; redisCpu: number }> {
  const profile = (query: string) =>
    fetch(`${job.controlUrl}/profile${query}`).then((res) => {
      if (!res.ok) throw new Error(`profiler: ${res.status}`);
    });
  const redis = new Redis(job.redisUrl, { lazyConnect: true });
  try {
    await redis.connect();
    if (job.profile !== undefined) await profile('');
    const redisBefore = await redisCpu(redis);
    const cpuBefore = await serverCpu(job);
    const out = await run();
    const cpu = (await serverCpu(job)) - cpuBefore;
    const redisUsed = (await redisCpu(redis)) - redisBefore;
    if (job.profile !== undefined) await profile(`?stop=${encodeURIComponent(job.profile)}`);
    return { out, cpu, redisCpu: redisUsed };
  } finally {
    redis.disconnect();
  }
}

type Request = NonNullable<autocannon.Options['requests']>[number];

function requests(job: LoadJob): Request[] {
  switch (job.kind) {
    case 'me':
      // Static requests: autocannon builds each buffer once, so the generator spends no time per request on them.
      return job.tokens.map((token) => ({
        method: 'GET',
        path: '/me',
        headers: { authorization: `Bearer ${token}` },
      }));
    case 'login': {
      // One counter for every connection, so that concurrent logins are of different users. The
      // users are this run's own (this process's id in their names): the runs of a target share
      // one Redis, and a round must not meet the sessions earlier rounds left in their hashes.
      const run = process.pid.toString(36);
      let next = Math.floor(Math.random() * job.users);
      return [
        {
          method: 'POST',
          path: '/login',
          headers: BODY_HEADERS,
          setupRequest: (req) => ({
            ...req,
            body: JSON.stringify({ id: `user-${run}-${next++ % job.users}` }),
          }),
        },
      ];
    }
    case 'refresh': {
      // Each refresh token works once: every answer's new refresh token goes back into the pool.
      const pool = [...job.tokens];
      return [
        {
          method: 'POST',
          path: '/refresh',
          headers: BODY_HEADERS,
          setupRequest: (req) => ({
            ...req,
            body: JSON.stringify({ refresh_token: pool.shift() ?? 'pool-empty' }),
          }),
          onResponse: (status, body) => {
            if (status === 200)
              pool.push((JSON.parse(body) as { refresh_token: string }).refresh_token);
          },
        },
      ];
    }
  }
}

/** wrk's Lua script: the requests are formatted once, then sent in turn. */
function wrkScript(tokens: string[]): string {
  const list = tokens.map((t) => JSON.stringify(`Bearer ${t}`)).join(',\n');
  return `local auth = {\n${list}\n}
local requests, i = {}, 0
init = function()
  for k, v in ipairs(auth) do requests[k] = wrk.format('GET', '/me', { ['Authorization'] = v }) end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
`;
}

/** Runs wrk for `seconds` and returns its report; bounded by wrk's own duration plus a margin. */
function runWrk(
  url: string,
  script: string,
  connections: number,
  seconds: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'wrk',
      [
        '-t1',
        `-c${connections}`,
        `-d${seconds}s`,
        '--latency',
        '--timeout',
        '10s',
        '-s',
        script,
        `${url}/me`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 15) * 1000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`wrk exited with ${code}: ${out}`));
    });
  });
}

/** wrk latencies like "1.23ms", "850.00us", "1.02s" in ms. */
function wrkMs(text: string | undefined): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text ?? '');
  if (!m) return NaN;
  const value = Number(m[1]);
  return m[2] === 'us' ? value / 1000 : m[2] === 's' ? value * 1000 : value;
}

async function loadWithWrk(job: LoadJob): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'kjr-wrk-'));
  const script = join(dir, 'me.lua');
  writeFileSync(script, wrkScript(job.tokens));
  try {
    if (job.warmupSeconds > 0) await runWrk(job.url, script, job.connections, job.warmupSeconds);
    const { out, cpu, redisCpu } = await measured(job, () =>
      runWrk(job.url, script, job.connections, job.seconds),
    );
    const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    const socketErrors =
      /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    return {
      cpuPerRequest: cpu / Math.max(1, total),
      redisCpuPerRequest: redisCpu / Math.max(1, total),
      requests: total,
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
      p50: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
      p99: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
      non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
      errors: socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function load(job: LoadJob): Promise<LoadResult> {
  if (job.kind === 'me' && meLoader === 'wrk') return loadWithWrk(job);
  if (job.warmupSeconds > 0) {
    await autocannon({
      url: job.url,
      connections: job.connections,
      duration: job.warmupSeconds,
      timeout: 10,
      requests: requests({ ...job, tokens: job.warmupTokens }),
    });
  }
  const {
    out: result,
    cpu,
    redisCpu,
  } = await measured(job, () =>
    autocannon({
      url: job.url,
      connections: job.connections,
      duration: job.seconds,
      pipelining: 1,
      timeout: 10,
      requests: requests(job),
    }),
  );
  return {
    cpuPerRequest: cpu / Math.max(1, result.requests.total),
    redisCpuPerRequest: redisCpu / Math.max(1, result.requests.total),
    requests: result.requests.total,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

if (process.argv[2] === '-') {
  // The job comes on stdin: hundreds of tokens are more than one command-line argument may hold.
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8')) as LoadJob;
  const result = await load(job);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
