import Router from '@koa/router';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Auth,
  AuthConfigError,
  AuthError,
  authorize,
  type AuthorizeRule,
  createAuth,
  memoryStore,
} from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment, forgeHmac, SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';

/** authorize(): 403 insufficient_scope with an RFC 6750 §3.1 challenge, over HTTP against real Redis. */

// The app's claims, declared the way the README tells users to.
declare module '../../src/index.js' {
  interface UserClaims {
    role?: 'admin' | 'member';
    roles?: string[];
    scope?: string;
    plan?: 'free' | 'pro';
    tenant?: string;
  }
}

let auth: Auth;
let server: Served;

afterEach(async () => {
  await server?.close();
  await auth?.close();
});

/** One route per rule, behind requireAuth then authorize(rule). */
async function start(
  rules: Record<string, AuthorizeRule>,
  options: Parameters<typeof testAuth>[0] = {},
): Promise<void> {
  auth = testAuth({ userFields: ['role', 'roles', 'scope', 'plan', 'tenant'], ...options });
  const router = new Router();
  for (const [name, rule] of Object.entries(rules)) {
    router.get(`/${name}`, auth.requireAuth(), auth.authorize(rule), (ctx) => {
      ctx.body = { ok: true, sub: ctx.state.user?.sub };
    });
  }
  const app = new Koa();
  app.silent = true; // a predicate's own error is expected in one test
  app.use(router.routes());
  server = await serve(app);
}

async function tokenFor(claims: Record<string, unknown>): Promise<string> {
  return (await auth.generateTokens({ id: 7, ...claims })).access_token;
}

async function get(path: string, token?: string) {
  return call(server.url, path, token === undefined ? {} : { token });
}

describe('authorize()', () => {
  it('lets a token with every required scope through, and answers 403 with the RFC 6750 challenge otherwise', async () => {
    await start({ write: { scope: ['notes:read', 'notes:write'] } });
    const both = await tokenFor({ scope: 'profile notes:read notes:write' });
    expect((await get('/write', both)).status).toBe(200);

    const readOnly = await tokenFor({ scope: 'notes:read' });
    const res = await get('/write', readOnly);
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: 'insufficient_scope', message: expect.any(String) });
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer error="insufficient_scope", scope="notes:read notes:write"',
    );
    expect(res.headers.get('cache-control')).toBe('no-store');
    // No scope claim at all is the same 403.
    expect((await get('/write', await tokenFor({}))).status).toBe(403);
  });

  it('does not match a scope by substring', async () => {
    await start({ admin: { scope: 'admin' } });
    expect((await get('/admin', await tokenFor({ scope: 'administrator notadmin' }))).status).toBe(
      403,
    );
  });

  it('accepts one of the listed roles from a role or a roles claim', async () => {
    await start({ staff: { role: ['admin', 'editor'] } });
    expect((await get('/staff', await tokenFor({ role: 'admin' }))).status).toBe(200);
    expect((await get('/staff', await tokenFor({ roles: ['viewer', 'editor'] }))).status).toBe(200);
    const member = await get('/staff', await tokenFor({ role: 'member' }));
    expect(member.status).toBe(403);
    expect(member.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope"');
  });

  it('matches claims by value, by list of values, and inside array claims', async () => {
    await start({
      pro: { claims: { plan: 'pro' } },
      acme: { claims: { tenant: ['acme', 'acme-eu'], plan: ['free', 'pro'] } },
      roles: { claims: { roles: 'auditor' } },
    });
    expect((await get('/pro', await tokenFor({ plan: 'pro' }))).status).toBe(200);
    expect((await get('/pro', await tokenFor({ plan: 'free' }))).status).toBe(403);
    expect((await get('/acme', await tokenFor({ tenant: 'acme-eu', plan: 'free' }))).status).toBe(
      200,
    );
    expect((await get('/acme', await tokenFor({ tenant: 'globex', plan: 'pro' }))).status).toBe(
      403,
    );
    expect((await get('/roles', await tokenFor({ roles: ['auditor'] }))).status).toBe(200);
  });

  it('runs a predicate with the user and the context, sync or async, and demands every part of a rule', async () => {
    await start({
      own: (user, ctx) => ctx.query.owner === user.sub,
      later: async (user) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return user.role === 'admin';
      },
      both: { role: 'admin', check: (user) => user.plan === 'pro' },
    });
    const admin = await tokenFor({ role: 'admin', plan: 'free' });
    expect((await get('/own?owner=7', admin)).status).toBe(200);
    expect((await get('/own?owner=8', admin)).status).toBe(403);
    expect((await get('/later', admin)).status).toBe(200);
    expect((await get('/later', await tokenFor({ role: 'member' }))).status).toBe(403);
    expect((await get('/both', admin)).status).toBe(403);
    expect((await get('/both', await tokenFor({ role: 'admin', plan: 'pro' }))).status).toBe(200);
  });

  it('keeps 401 for a missing or bad token: requireAuth answers before authorize', async () => {
    await start({ write: { scope: 'notes:write' } }, { realm: 'api' });
    const missing = await get('/write');
    expect(missing.status).toBe(401);
    expect(missing.body.error).toBe('token_missing');
    const forbidden = await get('/write', await tokenFor({ scope: 'notes:read' }));
    expect(forbidden.headers.get('www-authenticate')).toBe(
      'Bearer realm="api", error="insufficient_scope", scope="notes:write"',
    );
  });

  it('answers 401 token_missing when used without requireAuth and no user is there', async () => {
    auth = testAuth();
    const app = new Koa();
    app.use(auth.getData()).use(auth.authorize({ role: 'admin' }));
    app.use((ctx) => {
      ctx.body = 'secret';
    });
    server = await serve(app);
    const res = await get('/');
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('token_missing');
  });

  it('after getData(), answers with the reason it recorded: token_expired, token_invalid, token_revoked', async () => {
    auth = testAuth({ realm: 'api' });
    const app = new Koa();
    app.use(auth.getData()).use(auth.authorize({ role: 'admin' }));
    app.use((ctx) => {
      ctx.body = 'secret';
    });
    server = await serve(app);
    const pair = await auth.generateTokens({ id: 'expired-here' });
    const now = Math.floor(Date.now() / 1000);
    const expired = forgeHmac(
      decodeSegment(pair.access_token, 0),
      { ...decodeSegment(pair.access_token, 1), iat: now - 1000, exp: now - 100 },
      SECRET,
    );
    const late = await get('/', expired);
    expect(late.status).toBe(401);
    expect(late.body.error).toBe('token_expired');
    const invalid = await get('/', 'not-a-jwt');
    expect(invalid.status).toBe(401);
    expect(invalid.body.error).toBe('token_invalid');
    expect(invalid.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="api", error="invalid_token"/,
    );
    await auth.invalidateRefreshToken(pair.refresh_token);
    const revoked = await get('/', pair.access_token);
    expect(revoked.status).toBe(401);
    expect(revoked.body.error).toBe('token_revoked');
  });

  it('after getData(), a session store that cannot answer is 503 store_unavailable, not a logout', async () => {
    const store = memoryStore();
    auth = createAuth({ secret: SECRET, store });
    const app = new Koa();
    app.use(auth.getData()).use(auth.authorize({ role: 'admin' }));
    server = await serve(app);
    const pair = await auth.generateTokens({ id: 'outage' });
    await store.close(); // a closed store fails every call, as one that is down does
    const res = await get('/', pair.access_token);
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('store_unavailable');
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it('a strategy’s AuthError with a header Node refuses still answers its status as JSON (no crash)', async () => {
    auth = testAuth();
    const jwt = auth.strategies.get('jwt');
    auth.strategies.register('picky', {
      ...jwt,
      readToken: () => {
        throw new AuthError('token_invalid', 'Refused by the app’s strategy.', {
          headers: { 'X-Reason': 'caf\u0100' },
        });
      },
    });
    const app = new Koa();
    app.use(auth.requireAuth({ strategy: 'picky' }));
    app.use((ctx) => {
      ctx.body = 'secret';
    });
    server = await serve(app);
    const res = await get('/', 'any-token');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'token_invalid', message: 'Refused by the app’s strategy.' });
    expect((await get('/', 'again')).status).toBe(401);
  });

  it('lets a predicate that throws fail the request the usual way, not as a 403', async () => {
    await start({ broken: () => Promise.reject(new Error('database down')) });
    const res = await get('/broken', await tokenFor({}));
    expect(res.status).toBe(500);
    expect(res.text).not.toContain('database down');
  });

  it('refuses bad rules at start-up with AuthConfigError naming the part', () => {
    auth = testAuth();
    const bad: [unknown, RegExp][] = [
      [{}, /at least one/],
      [{ scope: 'two words' }, /authorize\.scope/],
      [{ scope: 'a"b' }, /authorize\.scope/],
      [{ scope: [] }, /authorize\.scope/],
      [{ role: 3 }, /authorize\.role/],
      // One string read as a list: a role no user has.
      [{ role: 'admin,editor' }, /authorize\.role.*one role per item/],
      // Given as a list, a comma is part of the role (an LDAP group's DN): accepted below.
      [{ check: 'yes' }, /authorize\.check/],
      [{ claims: [] }, /authorize\.claims/],
      // An unset environment variable would have let through every token without the claim;
      // an object, NaN or an empty list would never match.
      [{ claims: { plan: undefined } }, /authorize\.claims\.plan/],
      [{ claims: { plan: process.env.KJR_UNSET_FOR_THIS_TEST } }, /authorize\.claims\.plan/],
      [{ claims: { plan: { nested: 1 } } }, /authorize\.claims\.plan/],
      [{ claims: { plan: Number.NaN } }, /authorize\.claims\.plan/],
      [{ claims: { plan: [] } }, /authorize\.claims\.plan/],
      [{ claims: { plan: ['pro', undefined] } }, /authorize\.claims\.plan/],
      [{ scopes: 'x' }, /authorize\.scopes/],
      // A requirement from an unset environment variable beside another: dropping it would let
      // through users it was written to refuse.
      [
        { scope: process.env.KJR_UNSET_FOR_THIS_TEST, role: 'member' },
        /authorize\.scope.*undefined/,
      ],
      [{ role: undefined, scope: 'notes:read' }, /authorize\.role.*undefined/],
      [{ role: undefined, check: () => true }, /authorize\.role.*undefined/],
      [{ check: undefined, role: 'member' }, /authorize\.check.*undefined/],
      [{ role: undefined }, /authorize\.role.*undefined/],
      [null, /authorize/],
    ];
    for (const [rule, message] of bad) {
      expect(() => auth.authorize(rule as AuthorizeRule)).toThrow(AuthConfigError);
      expect(() => auth.authorize(rule as AuthorizeRule)).toThrow(message);
    }
    expect(() => auth.authorize({ role: ['CN=Admins,OU=Groups,DC=corp'] })).not.toThrow();
    // null is a value a claim can have (and a missing claim is not).
    expect(() => auth.authorize({ claims: { plan: null } } as never)).not.toThrow();
  });

  it('is a free function bound to the default instance, and is typed against UserClaims', async () => {
    auth = testAuth();
    expect(typeof authorize({ scope: 'x' })).toBe('function');
    // @ts-expect-error plan is 'free' | 'pro' on UserClaims
    auth.authorize({ claims: { plan: 'gold' } });
    // @ts-expect-error a predicate returns a boolean
    auth.authorize(() => 'yes');
    auth.authorize({ claims: { plan: ['free', 'pro'], tenant: 'acme' } });
    auth.authorize((user) => user.role === 'admin' && user.sub.length > 0);
  });
});
