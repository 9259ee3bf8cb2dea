import Router from '@koa/router';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import type { Auth, RoutesOptions } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { call, type Reply, serve, type Served } from '../helpers/http.js';
import { checkPassword, setCookies } from '../helpers/web.js';

/**
 * auth.routes() mounted under a parent router's prefix, in cookie delivery: the refresh cookie's
 * Path must be where the browser will post to refresh, or the browser never sends it back.
 */

const REFRESH = '__Secure-refresh_token';
const CSRF = '__Host-csrf_token';

let auth: Auth;
let server: Served;

afterEach(async () => {
  await server?.close();
  await auth?.close();
});

/** An app whose auth routes live at `${mount}/auth/*` through a parent router with that prefix. */
async function start(mount: string, routeOptions: Partial<RoutesOptions> = {}): Promise<void> {
  auth = testAuth({ tokenDelivery: 'cookie' });
  const app = new Koa();
  const parent = new Router({ prefix: mount });
  const authRouter = auth.routes({
    login: (ctx) => checkPassword(ctx.request.body),
    ...routeOptions,
  });
  parent.use(authRouter.routes(), authRouter.allowedMethods());
  app.use(parent.routes()).use(parent.allowedMethods());
  server = await serve(app);
}

/** A cookie jar that honours Path the way a browser does (prefix match on whole segments). */
class PathJar {
  /** By name and Path, as a browser keeps them (the refresh cookie is set at two Paths). */
  private readonly cookies = new Map<string, { name: string; value: string; path: string }>();

  take(headers: Headers): void {
    for (const raw of headers.getSetCookie()) {
      const [pair, ...attributes] = raw.split(';').map((part) => part.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const path = attributes.find((a) => a.startsWith('Path='))?.slice(5) ?? '/';
      const key = `${name} ${path}`;
      if (attributes.includes('Max-Age=0')) this.cookies.delete(key);
      else this.cookies.set(key, { name, value: pair!.slice(eq + 1), path });
    }
  }

  header(requestPath: string): string {
    return [...this.cookies.values()]
      .filter(
        ({ path }) => path === '/' || requestPath === path || requestPath.startsWith(`${path}/`),
      )
      .map(({ name, value }) => `${name}=${value}`)
      .join('; ');
  }

  /** The Paths a cookie of this name is kept at, in the order they were set. */
  paths(name: string): string[] {
    return [...this.cookies.values()].filter((c) => c.name === name).map((c) => c.path);
  }

  path(name: string): string | undefined {
    return this.paths(name)[0];
  }

  value(name: string): string | undefined {
    return [...this.cookies.values()].find((c) => c.name === name)?.value;
  }
}

async function browser(jar: PathJar, path: string, body: unknown = {}): Promise<Reply> {
  const headers: Record<string, string> = {
    origin: server.url,
    'x-csrf-token': jar.value(CSRF) ?? '1',
  };
  const cookie = jar.header(path);
  if (cookie) headers.cookie = cookie;
  const res = await call(server.url, path, { body, headers });
  jar.take(res.headers);
  return res;
}

const credentials = { username: 'alice', password: 'wonderland' };

describe('auth.routes() under a parent router prefix', () => {
  it('scopes the refresh cookie to the mounted refresh route, and a browser refreshes through it', async () => {
    await start('/api/v1');
    const jar = new PathJar();
    const login = await browser(jar, '/api/v1/auth/login', credentials);
    expect(login.status).toBe(200);
    expect(jar.paths(REFRESH)).toEqual(['/api/v1/auth/refresh', '/api/v1/auth/logout']);

    // The browser sends the refresh cookie to the refresh and logout routes only, and it works
    // there.
    expect(jar.header('/api/v1/auth/refresh')).toContain(REFRESH);
    expect(jar.header('/api/v1/auth/logout')).toContain(REFRESH);
    for (const elsewhere of ['/api/v1/auth/sessions', '/api/v1/auth/logout-all', '/api/v1/me'])
      expect(jar.header(elsewhere)).not.toContain(REFRESH);
    const before = jar.value(REFRESH);
    const refreshed = await browser(jar, '/api/v1/auth/refresh');
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toEqual({ token_type: 'cookie', expires_in: 900 });
    expect(jar.value(REFRESH)).not.toBe(before);
    // The rotation replaces both copies.
    expect(jar.paths(REFRESH)).toEqual(['/api/v1/auth/refresh', '/api/v1/auth/logout']);
    expect(jar.header('/api/v1/auth/logout')).toContain(`${REFRESH}=${jar.value(REFRESH)}`);
    expect(jar.header('/api/v1/auth/logout')).not.toContain(before);

    // Logout clears the cookie at both Paths, so the browser really drops it.
    const logout = await browser(jar, '/api/v1/auth/logout');
    expect(logout.status).toBe(204);
    const cleared = setCookies(logout.headers).get(REFRESH)!;
    expect(cleared.attributes).toContain('Path=/api/v1/auth/refresh');
    expect(cleared.attributes).toContain('Max-Age=0');
    expect(jar.paths(REFRESH)).toEqual([]);
    expect(await auth.listSessions(1)).toEqual([]);
  });

  it('uses the path the request really came in at, parameters filled in', async () => {
    await start('/tenants/:tenant');
    const jar = new PathJar();
    await browser(jar, '/tenants/acme/auth/login', credentials);
    expect(jar.path(REFRESH)).toBe('/tenants/acme/auth/refresh');
    expect((await browser(jar, '/tenants/acme/auth/refresh')).status).toBe(200);
  });

  it('never lets a path segment write Set-Cookie attributes: an unsafe path falls back to the prefix', async () => {
    await start('/tenants/:tenant');
    const res = await call(server.url, '/tenants/a;Domain=evil.example/auth/login', {
      body: credentials,
      headers: { origin: server.url, 'x-csrf-token': '1' },
    });
    expect(res.status).toBe(200);
    const refresh = setCookies(res.headers).get(REFRESH)!;
    expect(refresh.attributes).toContain('Path=/auth/refresh');
    for (const raw of res.headers.getSetCookie()) expect(raw.toLowerCase()).not.toContain('domain');
  });

  it('takes refreshCookiePath as given, for a proxy that rewrites the path', async () => {
    await start('/v1', { refreshCookiePath: '/public/v1/auth/refresh' });
    const jar = new PathJar();
    await browser(jar, '/v1/auth/login', credentials);
    expect(jar.paths(REFRESH)).toEqual(['/public/v1/auth/refresh', '/public/v1/auth/logout']);
  });

  it('refuses a refreshCookiePath that is not a plain URL path, at start-up', () => {
    auth = testAuth({ tokenDelivery: 'cookie' });
    for (const refreshCookiePath of ['auth/refresh', '/a; Domain=x', '/a b', '/a?x=1']) {
      expect(() => auth.routes({ login: () => null, refreshCookiePath })).toThrow(
        /refreshCookiePath/,
      );
    }
  });
});
