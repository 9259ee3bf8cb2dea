/**
 * One benchmark target per process: `tsx bench/server.ts <target> <redisUrl>`. Prints one JSON line
 * `{ port, control }` once listening. `port` serves the measured app; `control` (a second server in
 * the same process, never measured) hands out tokens that the load generator sends.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Session } from 'node:inspector';
import type { AddressInfo } from 'node:net';
import jsonwebtoken from 'jsonwebtoken';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import koaJwt from 'koa-jwt';
import { type Auth, createAuth, memoryStore, postgresStore } from 'koa-jwt-redis';
import pg from 'pg';
import { handWritten } from './hand-written.js';
import { SECRET } from './secret.js';
import {
  onMemory,
  onPostgres,
  sharedKeys,
  strategyOf,
  type Target,
  textRecords,
  TARGET_NAMES,
} from './targets.js';

const [target, redisUrl] = process.argv.slice(2) as [Target, string];
if (!TARGET_NAMES.includes(target) || !redisUrl)
  throw new Error(`usage: server.ts <${TARGET_NAMES.join('|')}> <redisUrl>`);

const app = new Koa();
const ok = (ctx: Koa.Context) => {
  ctx.body = { ok: true };
};
/**
 * Access-token lifetime (s) of a /me target's tokens: they are issued once, when the process
 * starts, and must outlive the whole run (5 rounds of 22 targets took 26 minutes on a slow machine).
 */
const ME_ACCESS_TTL = 7200;
/** Bare Koa's targets: the measured app reads no token. */
const bare = target === 'bare' || target === 'bare-deferred';
const hand = target.startsWith('hand-')
  ? handWritten(redisUrl, `bench:${target}:`, target === 'hand-me' ? ME_ACCESS_TTL : 900)
  : undefined;
/** Login and refresh targets issue tokens per request; the others only read tokens issued at start. */
const issuing = /^(login|refresh)/.test(target);
// PostgreSQL targets work in a schema of their own, created here and dropped on exit.
const pgSchema = onPostgres(target) ? `bench_${process.pid}` : undefined;
const pgStore =
  pgSchema === undefined
    ? undefined
    : postgresStore(
        {
          connectionString: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
          max: 20,
        },
        // Token issuing floods the pool with 1000 logins at a time: let them queue.
        { schema: pgSchema, pruneInterval: 0, timeout: 10_000 },
      );
await pgStore?.migrate();
const auth =
  bare || target === 'koa-jwt' || hand
    ? undefined
    : createAuth({
        secret: SECRET,
        ...(pgStore
          ? { store: pgStore }
          : onMemory(target)
            ? { store: memoryStore() }
            : {
                redis: redisUrl,
                keyPrefix: `bench:${target}:`,
                keyBuckets: sharedKeys(target),
                recordFormat: textRecords(target) ? 'text' : 'binary',
                // bench/callgrind.ts runs the server under valgrind, 20 to 50 times slower.
                ...(process.env.BENCH_STORE_TIMEOUT
                  ? { storeTimeout: Number(process.env.BENCH_STORE_TIMEOUT) }
                  : {}),
              }),
        strategy: strategyOf(target),
        // Login and refresh sessions expire soon after the run; a /me target's outlive it.
        accessTokenTtl: issuing ? 900 : ME_ACCESS_TTL,
        refreshTokenTtl: issuing ? 1200 : 10_800,
        // The moonshot: session liveness cached in process, kept coherent by Redis; the verify
        // cache sized for every token of the run, as an app enabling both would size it.
        // bench/callgrind.ts sets BENCH_MAX_STALENESS: its slowed server hears the feed's pings late.
        ...(target === 'requireAuth-cached'
          ? {
              sessionCache: process.env.BENCH_MAX_STALENESS
                ? { maxStaleness: Number(process.env.BENCH_MAX_STALENESS) }
                : true,
              verifyCacheSize: 50_000,
            }
          : {}),
      });

switch (target) {
  case 'bare':
    app.use(ok);
    break;
  case 'bare-deferred':
    app.use((_ctx, next) => new Promise<void>((resolve) => setImmediate(resolve)).then(next));
    app.use(ok);
    break;
  case 'floor-cached':
    app.use((ctx, next) => {
      const user = floor.get(ctx.headers.authorization ?? '');
      if (user === undefined) ctx.throw(401);
      ctx.state.user = { ...user };
      return next();
    });
    app.use(ok);
    break;
  case 'koa-jwt':
    app.use(koaJwt({ secret: SECRET }));
    app.use(ok);
    break;
  case 'requireAuth-stateless':
    app.use(auth!.requireAuth({ checkSession: false }));
    app.use(ok);
    break;
  case 'requireAuth-redis':
  case 'requireAuth-cached':
  case 'requireAuth-session':
  case 'requireAuth-memory':
  case 'requireAuth-shared':
  case 'requireAuth-pg':
  case 'requireAuth-session-pg':
    app.use(auth!.requireAuth());
    app.use(ok);
    break;
  case 'hand-me':
    app.use((ctx) => {
      const header = ctx.get('authorization');
      const user = header.startsWith('Bearer ') ? hand!.me(header.slice(7)) : undefined;
      if (!user) ctx.throw(401);
      ctx.state.user = user;
      ok(ctx);
    });
    break;
  case 'hand-login':
    app.use(koaBody());
    app.use(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await hand!.login((ctx.request.body as { id: string }).id);
    });
    break;
  case 'hand-refresh':
    app.use(koaBody());
    app.use(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      const pair = await hand!.refresh(
        (ctx.request.body as { refresh_token: string }).refresh_token,
      );
      if (!pair) ctx.throw(401);
      ctx.body = pair;
    });
    break;
  case 'login':
  case 'login-pg':
  case 'login-memory':
  case 'login-shared':
  case 'login-text':
  case 'login-session':
  case 'login-jwt':
    app.use(koaBody());
    app.use(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await auth!.generateTokens(
        { id: (ctx.request.body as { id: string }).id },
        { ctx },
      );
    });
    break;
  case 'refresh':
  case 'refresh-pg':
  case 'refresh-memory':
  case 'refresh-shared':
  case 'refresh-text':
  case 'refresh-session':
  case 'refresh-jwt':
    app.use(koaBody());
    app.use(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await auth!.refreshTokens(
        (ctx.request.body as { refresh_token: string }).refresh_token,
        { ctx },
      );
    });
    break;
  default:
    // Every target has its server: a new one without a case here would answer 404s.
    target satisfies never;
}
// The load generator counts non-2xx answers; keep Koa from logging each to stderr.
app.silent = true;

/** floor-cached: each issued access token's claims, by the Authorization header that carries it. */
const floor = new Map<string, Record<string, unknown>>();

let accessTokens: Promise<string[]> | undefined;
let issued = 0;

/**
 * Pairs for n distinct users (fresh user ids on each call, and of this process only: every run
 * has a process of its own), in batches so Redis is never flooded.
 */
async function issue(n: number, kind: 'access' | 'refresh'): Promise<string[]> {
  // Bare Koa ignores the token, but is sent the library's own, as the rows it is the baseline of
  // are: the same header of about 320 characters to parse (jsonwebtoken's { sub } makes about
  // 160). Issued from process memory, released before the measured runs.
  const issuer =
    auth ??
    (bare
      ? createAuth({ secret: SECRET, store: memoryStore(), accessTokenTtl: ME_ACCESS_TTL })
      : undefined);
  try {
    return await issueFrom(issuer, n, kind);
  } finally {
    if (issuer !== auth) await issuer?.close();
  }
}

async function issueFrom(
  issuer: Auth | undefined,
  n: number,
  kind: 'access' | 'refresh',
): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i += 1000) {
    const ids = Array.from(
      { length: Math.min(1000, n - i) },
      () => `user-${process.pid}-${issued++}`,
    );
    const pairs = await Promise.all(
      ids.map(async (id) => {
        if (hand) return hand.login(id);
        if (issuer) return issuer.generateTokens({ id }, { ip: '127.0.0.1', userAgent: 'bench' });
        const access_token = jsonwebtoken.sign({ sub: id }, SECRET, { expiresIn: ME_ACCESS_TTL });
        return { access_token, refresh_token: '' };
      }),
    );
    for (const pair of pairs) {
      tokens.push(kind === 'access' ? pair.access_token : pair.refresh_token);
      if (target === 'floor-cached')
        floor.set(
          `Bearer ${pair.access_token}`,
          JSON.parse(Buffer.from(pair.access_token.split('.')[1]!, 'base64url').toString()),
        );
    }
  }
  return tokens;
}

/** The sampling profiler of this process, driven from the control server. */
const profiler = (() => {
  const session = new Session();
  const post = (method: string, params: object = {}) =>
    new Promise<Record<string, unknown>>((resolve, reject) =>
      session.post(method, params, (error, result) =>
        error ? reject(error) : resolve((result ?? {}) as Record<string, unknown>),
      ),
    );
  return {
    async start(): Promise<void> {
      session.connect();
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 250 });
      await post('Profiler.start');
    },
    async stop(): Promise<unknown> {
      const { profile } = await post('Profiler.stop');
      session.disconnect();
      return profile;
    },
  };
})();

/**
 * Control endpoints: GET /access?n= (access tokens for n users), GET /refresh?n= (fresh refresh
 * tokens), GET /cpu, GET /profile (start profiling) and GET /profile?stop=<file> (write it).
 */
async function control(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  if (url.pathname === '/profile') {
    // BENCH_PROFILE=1: a CPU profile of the measured window only (not token issuing or warm-up).
    const file = url.searchParams.get('stop');
    if (file === null) await profiler.start();
    else writeFileSync(file, JSON.stringify(await profiler.stop()));
    res.writeHead(204).end();
    return;
  }
  if (url.pathname === '/cpu') {
    // CPU time this process has used, in µs: per request it is steadier than req/s on a busy machine.
    const { user, system } = process.cpuUsage();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(user + system));
    return;
  }
  const n = Math.min(Number(url.searchParams.get('n') ?? 100), 100_000);
  let tokens: string[];
  if (url.pathname === '/access') {
    // The same access tokens for every round: issued once per process.
    accessTokens ??= issue(n, 'access');
    tokens = await accessTokens;
  } else if (url.pathname === '/refresh') {
    tokens = await issue(n, 'refresh');
  } else {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(tokens));
}

const server = app.listen(0, '127.0.0.1', () => {
  const controlServer = createServer((req, res) => {
    control(req, res).catch((error: unknown) => res.writeHead(500).end(String(error)));
  });
  // Longer than a run: a kept-alive control connection must not be closed just as it is reused.
  controlServer.keepAliveTimeout = 120_000;
  controlServer.listen(0, '127.0.0.1', () => {
    const port = (server.address() as AddressInfo).port;
    const controlPort = (controlServer.address() as AddressInfo).port;
    process.stdout.write(`${JSON.stringify({ port, control: controlPort })}\n`);
  });
});

// A clean exit lets --cpu-prof write its profile.
const stop = () => {
  server.closeAllConnections();
  const dropSchema = async () => {
    if (pgSchema === undefined) return;
    const client = new pg.Client({
      connectionString: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`).finally(() => client.end());
  };
  void Promise.all([auth?.close(), hand?.close()])
    .then(dropSchema)
    .finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
