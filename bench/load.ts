/**
 * The load generator, in its own process: `tsx bench/load.ts -` with a JSON job on stdin. Drives one target
 * with autocannon for a bounded time and prints one JSON line with the result.
 */
import autocannon from 'autocannon';

export interface LoadJob {
  url: string;
  /** The target's control server, asked for its CPU time before and after the measured run. */
  controlUrl: string;
  /** GET /me with these bearer tokens in turn, or POST /login, or POST /refresh with these refresh tokens. */
  kind: 'me' | 'login' | 'refresh';
  tokens: string[];
  connections: number;
  seconds: number;
  /** Unmeasured run first, so the JIT and the connection pools are warm. */
  warmupSeconds: number;
  /** Fresh refresh tokens for the warm-up run (refresh tokens work once). */
  warmupTokens: string[];
}

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** Server CPU time (user + system) per answered request, in µs. */
  cpuPerRequest: number;
}

async function serverCpu(job: LoadJob): Promise<number> {
  return (await (await fetch(`${job.controlUrl}/cpu`)).json()) as number;
}

type Request = NonNullable<autocannon.Options['requests']>[number];

function requests(job: LoadJob): Request[] {
  switch (job.kind) {
    case 'me':
      // Static requests: autocannon builds each buffer once, so the generator spends no time per request on them.
      return job.tokens.map((token) => ({ method: 'GET', path: '/me', headers: { authorization: `Bearer ${token}` } }));
    case 'login':
      return Array.from({ length: 1000 }, (_, i) => ({
        method: 'POST',
        path: '/login',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: `user-${i}` }),
      }));
    case 'refresh': {
      // Each refresh token works once: every answer's new refresh token goes back into the pool.
      const pool = [...job.tokens];
      return [
        {
          method: 'POST',
          path: '/refresh',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, body: JSON.stringify({ refresh_token: pool.shift() ?? 'pool-empty' }) }),
          onResponse: (status, body) => {
            if (status === 200) pool.push((JSON.parse(body) as { refresh_token: string }).refresh_token);
          },
        },
      ];
    }
  }
}

export async function load(job: LoadJob): Promise<LoadResult> {
  if (job.warmupSeconds > 0) {
    await autocannon({ url: job.url, connections: job.connections, duration: job.warmupSeconds, timeout: 10, requests: requests({ ...job, tokens: job.warmupTokens }) });
  }
  const cpuBefore = await serverCpu(job);
  const result = await autocannon({
    url: job.url,
    connections: job.connections,
    duration: job.seconds,
    pipelining: 1,
    timeout: 10,
    requests: requests(job),
  });
  const cpu = (await serverCpu(job)) - cpuBefore;
  return {
    cpuPerRequest: cpu / Math.max(1, result.requests.total),
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
