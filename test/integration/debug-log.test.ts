import { format } from 'node:util';
import createDebug from 'debug';
import Koa from 'koa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Auth, AuthError, authErrors, createAuth } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { rsaKeys, SECRET, withSegment } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { webApp } from '../helpers/web.js';

/**
 * DEBUG=koa-jwt-redis:* output, captured while users log in, refresh, reuse a token, log out and
 * get refused: it says what happened, and never contains a token, a piece of one, or a secret.
 */

const lines: string[] = [];
let previousNamespaces = '';
const previousLog = createDebug.log;

beforeAll(() => {
  previousNamespaces = createDebug.disable();
  createDebug.enable('koa-jwt-redis:*');
  createDebug.log = (...args: unknown[]) => {
    lines.push(format(...args));
  };
});
afterAll(() => {
  createDebug.log = previousLog;
  createDebug.disable();
  if (previousNamespaces) createDebug.enable(previousNamespaces);
});

let auth: Auth | undefined;
let server: Served | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await auth?.close();
  auth = undefined;
});

/** Every string that must never appear in the log: whole tokens and their payload and signature. */
function secretsOf(...tokens: string[]): string[] {
  const out: string[] = [];
  for (const token of tokens) {
    out.push(token);
    const [, payload, signature] = token.split('.');
    // The header is public and alike in every token; payload and signature are not.
    for (const part of [payload!, signature!]) if (part.length >= 16) out.push(part);
  }
  return out;
}

function expectNoneLogged(secrets: string[]): void {
  const log = lines.join('\n');
  for (const secret of secrets) {
    expect(secret.length).toBeGreaterThan(5);
    expect(log).not.toContain(secret);
  }
}

describe('debug logging', () => {
  it('logs logins, refreshes, reuse, logouts and refusals, and never a token, a password or the secret', async () => {
    lines.length = 0;
    auth = testAuth({ tokenDelivery: 'both', userFields: ['name'], refreshGracePeriod: 0 });
    server = await serve(webApp(auth));
    const browser = { origin: server.url, 'x-csrf-token': 'login' };

    const login = await call(server.url, '/auth/login', {
      body: { username: 'alice', password: 'wonderland' },
      headers: browser,
    });
    expect(login.status).toBe(200);
    const first = login.body as { access_token: string; refresh_token: string };
    const csrfCookie = login.headers
      .getSetCookie()
      .find((c) => c.startsWith('__Host-csrf_token='))!
      .split(';')[0]!
      .split('=')[1]!;

    expect((await call(server.url, '/me', { token: first.access_token })).status).toBe(200);
    const refreshed = await call(server.url, '/auth/refresh', {
      body: { refresh_token: first.refresh_token },
      headers: browser,
    });
    expect(refreshed.status).toBe(200);
    const second = refreshed.body as { access_token: string; refresh_token: string };
    // The rotated token comes back: reuse, the family is revoked.
    const reused = await call(server.url, '/auth/refresh', {
      body: { refresh_token: first.refresh_token },
      headers: browser,
    });
    expect(reused.body.error).toBe('refresh_reused');
    // A tampered token, an unknown user's password, a non-JSON login, getData with a bad token.
    const tampered = withSegment(second.access_token, 2, 'AAAA');
    expect((await call(server.url, '/me', { token: tampered })).status).toBe(401);
    expect(
      (
        await call(server.url, '/auth/login', {
          body: { username: 'alice', password: 'guess-1234' },
          headers: browser,
        })
      ).status,
    ).toBe(401);
    expect(
      (
        await call(server.url, '/whoami', {
          method: 'POST',
          token: second.access_token,
          headers: browser,
        })
      ).status,
    ).toBe(200);
    const again = await call(server.url, '/auth/login', {
      body: { username: 'bob', password: 'builder' },
      headers: browser,
    });
    await call(server.url, '/auth/logout', {
      body: { refresh_token: again.body.refresh_token },
      headers: browser,
    });

    const log = lines.join('\n');
    // It says what happened…
    expect(log).toContain('koa-jwt-redis:config');
    expect(log).toMatch(/login: user 1, session [\w-]+/);
    expect(log).toMatch(/refresh: user 1, session [\w-]+/);
    expect(log).toMatch(/refresh_reused: user 1, session [\w-]+ revoked/);
    expect(log).toMatch(/logout: user 2, session [\w-]+/);
    expect(log).toMatch(/GET \/me refused: 401 token_invalid/);
    expect(log).toMatch(/POST \/auth\/login → 401 invalid_credentials/);
    expect(log).toMatch(/POST \/whoami anonymous: token_revoked/);
    // …and nothing that would let a reader of the log act as a user.
    expectNoneLogged([
      SECRET,
      'wonderland',
      'guess-1234',
      'builder',
      csrfCookie,
      ...secretsOf(
        first.access_token,
        first.refresh_token,
        second.access_token,
        second.refresh_token,
        tampered,
        again.body.access_token as string,
        again.body.refresh_token as string,
      ),
    ]);
  });

  it('never quotes a token segment that is not JSON, which JSON.parse would put in the cause', async () => {
    auth = testAuth();
    server = await serve(webApp(auth));
    const { access_token: token } = await auth.generateTokens({ id: 1 });
    const text = (value: string) => Buffer.from(value).toString('base64url');
    const sent = [
      withSegment(token, 0, text('Sensitive-header-text')),
      withSegment(token, 0, text('{"alg":"HS256",Sensitive-json')),
      withSegment(token, 1, text('Sensitive-payload-text')),
    ];
    lines.length = 0;
    for (const bad of sent) {
      const res = await call(server.url, '/me', { token: bad });
      expect(res.status).toBe(401);
    }
    const log = lines.join('\n');
    expect(log).toMatch(/GET \/me refused: 401 token_invalid/);
    expect(log).not.toContain('Sensiti');
  });

  it('logs an asymmetric setup by key id and algorithm, never the key', async () => {
    lines.length = 0;
    const { privateKey } = rsaKeys();
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    auth = createAuth({ keys: [{ algorithm: 'RS256', privateKey: pem, kid: 'rsa-2026' }] });
    const pair = await auth.generateTokens({ id: 'carol' });
    const log = lines.join('\n');
    expect(log).toContain('rsa-2026 (RS256)');
    const body = pem.split('\n').slice(1, -2);
    for (const line of body) expect(log).not.toContain(line);
    expectNoneLogged(secretsOf(pair.access_token, pair.refresh_token));
  });

  it('logs a store failure with its cause', async () => {
    lines.length = 0;
    auth = testAuth({ redis: 'redis://127.0.0.1:1', storeTimeout: 200 });
    await expect(auth.ping()).rejects.toMatchObject({ code: 'store_unavailable' });
    await expect(auth.generateTokens({ id: 9 })).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    const log = lines.join('\n');
    expect(log).toMatch(/koa-jwt-redis:store .*ping failed: \w+/);
    expect(log).toMatch(/koa-jwt-redis:store .*login failed: \w+/);
  });

  it('logs a refused authorization with its code, not the token', async () => {
    lines.length = 0;
    auth = testAuth();
    const app = new Koa();
    app.use(auth.requireAuth()).use(auth.authorize({ scope: 'admin' }));
    server = await serve(app);
    const pair = await auth.generateTokens({ id: 9 });
    expect((await call(server.url, '/stats', { token: pair.access_token })).status).toBe(403);
    expect(lines.join('\n')).toMatch(/GET \/stats refused: 403 insufficient_scope/);
    expectNoneLogged(secretsOf(pair.access_token, pair.refresh_token));
  });

  it('logs each refusal once when authErrors() renders it, and a helper rejection there once too', async () => {
    lines.length = 0;
    auth = testAuth();
    const current = auth;
    const app = new Koa();
    app.use(authErrors());
    app.use(async (ctx, next) => {
      if (ctx.path !== '/refresh') return next();
      ctx.body = await current.refreshTokens('not-a-token');
    });
    app.use(auth.requireAuth());
    server = await serve(app);
    expect((await call(server.url, '/me')).status).toBe(401);
    expect((await call(server.url, '/refresh')).status).toBe(401);
    const authLines = lines.filter((line) => line.includes('koa-jwt-redis:auth'));
    expect(authLines.filter((line) => line.includes('GET /me'))).toHaveLength(1);
    expect(authLines.filter((line) => line.includes('GET /refresh'))).toHaveLength(1);
    expect(authLines.join('\n')).toMatch(/GET \/refresh → 401 token_invalid/);
  });

  it('logs an error object a strategy reuses at every request each time authErrors() renders it', async () => {
    lines.length = 0;
    auth = testAuth();
    // One AuthError for every refusal, as a custom strategy may keep.
    const shared = new AuthError('token_invalid', 'Refused by the app strategy.');
    auth.strategies.register('shared-refusal', {
      ...auth.strategies.get('jwt'),
      readToken: () => {
        throw shared;
      },
    });
    const app = new Koa();
    app.use(authErrors());
    app.use(async (ctx, next) => {
      if (ctx.path === '/rethrow') throw shared;
      return next();
    });
    app.use(auth.requireAuth({ strategy: 'shared-refusal' }));
    server = await serve(app);
    const pair = await auth.generateTokens({ id: 3 });
    expect((await call(server.url, '/me', { token: pair.access_token })).status).toBe(401);
    expect((await call(server.url, '/rethrow')).status).toBe(401);
    const authLines = lines.filter((line) => line.includes('koa-jwt-redis:auth'));
    expect(authLines.filter((line) => line.includes('GET /me'))).toHaveLength(1);
    expect(authLines.filter((line) => line.includes('GET /rethrow →'))).toHaveLength(1);
  });
});
