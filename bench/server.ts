/**
 * One benchmark target per process: `tsx bench/server.ts <target> <redisUrl>`. Prints one JSON line
 * `{ port, control }` once listening. `port` serves the measured app; `control` (a second server in
 * the same process, never measured) hands out tokens that the load generator sends.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import jsonwebtoken from 'jsonwebtoken';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import koaJwt from 'koa-jwt';
import { createAuth } from 'koa-jwt-redis';
import { SECRET } from './secret.js';
import { type Target, TARGET_NAMES } from './targets.js';

const [target, redisUrl] = process.argv.slice(2) as [Target, string];
if (!TARGET_NAMES.includes(target) || !redisUrl)
  throw new Error(`usage: server.ts <${TARGET_NAMES.join('|')}> <redisUrl>`);

const app = new Koa();
const ok = (ctx: Koa.Context) => {
  ctx.body = { ok: true };
};
const withCache = !target.endsWith('-nocache');
const auth =
  target === 'bare' || target === 'koa-jwt'
    ? undefined
    : createAuth({
        secret: SECRET,
        redis: redisUrl,
        keyPrefix: `bench:${target}:`,
        // Login and refresh sessions expire soon after the run; access tokens outlive the whole run.
        accessTokenTtl: 900,
        refreshTokenTtl: target === 'login' || target === 'refresh' ? 1200 : 3600,
        verifyCacheSize: withCache ? 10_000 : 0,
      });

switch (target) {
  case 'bare':
    app.use(ok);
    break;
  case 'koa-jwt':
    app.use(koaJwt({ secret: SECRET }));
    app.use(ok);
    break;
  case 'requireAuth-stateless':
  case 'requireAuth-stateless-nocache':
    app.use(auth!.requireAuth({ checkSession: false }));
    app.use(ok);
    break;
  case 'requireAuth-redis':
  case 'requireAuth-redis-nocache':
    app.use(auth!.requireAuth());
    app.use(ok);
    break;
  case 'login':
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
    app.use(koaBody());
    app.use(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await auth!.refreshTokens(
        (ctx.request.body as { refresh_token: string }).refresh_token,
        { ctx },
      );
    });
    break;
}
// The load generator counts non-2xx answers; keep Koa from logging each to stderr.
app.silent = true;

/** Control endpoints: GET /access?n= (access tokens for n users), GET /refresh?n= (fresh refresh tokens), GET /cpu. */
async function control(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  if (url.pathname === '/cpu') {
    // CPU time this process has used, in µs: per request it is steadier than req/s on a busy machine.
    const { user, system } = process.cpuUsage();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(user + system));
    return;
  }
  const n = Math.min(Number(url.searchParams.get('n') ?? 100), 10_000);
  const users = Array.from({ length: n }, (_, i) => `user-${i}`);
  let tokens: string[];
  if (url.pathname === '/access' && !auth) {
    tokens = users.map((sub) => jsonwebtoken.sign({ sub }, SECRET, { expiresIn: 900 }));
  } else if (url.pathname === '/access' || url.pathname === '/refresh') {
    const pairs = await Promise.all(
      users.map((id) => auth!.generateTokens({ id }, { ip: '127.0.0.1', userAgent: 'autocannon' })),
    );
    tokens = pairs.map((pair) =>
      url.pathname === '/access' ? pair.access_token : pair.refresh_token,
    );
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
  void auth?.close().finally(() => process.exit(0));
  if (!auth) process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
