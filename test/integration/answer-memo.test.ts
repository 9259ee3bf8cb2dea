import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Auth, TokenStrategy } from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { call, type Served, serve } from '../helpers/http.js';

/**
 * The answer memo of requireAuth() is for the built-in readers only, and bounded per instance.
 * (Its coherence with the session cache is tested in session-cache.test.ts.)
 */
describe('requireAuth() answer memo: which readers, which headers', () => {
  let auth: Auth;
  let server: Served;
  let jwtReads = 0;
  let wrapperReads = 0;
  beforeAll(async () => {
    auth = testAuth({ checkSession: false });
    const jwt = auth.strategies.get('jwt');
    // Counted on the built-in object itself, so it stays the built-in reader.
    const read = jwt.readToken.bind(jwt);
    jwt.readToken = (token, options) => {
      jwtReads++;
      return read(token, options);
    };
    // An app's own strategy that wraps the built-in one with a check of its own: a copy is
    // another object, so it gets no memo and its check runs on every request.
    const wrapper: TokenStrategy = {
      ...jwt,
      readToken(token, options) {
        wrapperReads++;
        return read(token, options);
      },
    };
    auth.strategies.register('wrapped', wrapper);
    const app = new Koa();
    app.use(async (ctx, next) => {
      const strategy = ctx.path === '/wrapped' ? 'wrapped' : 'jwt';
      await (strategy === 'jwt' ? jwtGuard : wrappedGuard)(ctx, next);
    });
    app.use((ctx) => {
      ctx.body = { sub: (ctx.state.user as { sub: string }).sub };
    });
    const jwtGuard = auth.requireAuth({ strategy: 'jwt' });
    const wrappedGuard = auth.requireAuth({ strategy: 'wrapped' });
    server = await serve(app);
  });
  afterAll(async () => {
    await server.close();
    await auth.close();
  });

  const token = async () =>
    (await auth.strategies.get('jwt').writeToken({ id: 'memo-reader' }, 'access')) as string;

  /** Sends `times` requests to `path` (each answered 200); how many reads `counted` saw. */
  async function reads(
    path: string,
    authorization: string,
    times: number,
    counted: () => number,
  ): Promise<number> {
    const before = counted();
    for (let i = 0; i < times; i++)
      expect((await call(server.url, path, { headers: { authorization } })).status).toBe(200);
    return counted() - before;
  }

  it('answers a built-in strategy’s repeat requests without reading the token again', async () => {
    expect(await reads('/jwt', `Bearer ${await token()}`, 5, () => jwtReads)).toBe(1);
  });

  it('never answers for a copy or wrapper of a built-in strategy', async () => {
    expect(await reads('/wrapped', `Bearer ${await token()}`, 5, () => wrapperReads)).toBe(5);
  });

  it('keeps only the plain "Bearer <token>" form: a padded header is read every time', async () => {
    expect(await reads('/jwt', `Bearer      ${await token()}`, 3, () => jwtReads)).toBe(3);
  });

  it('is one memo per instance, reader and session-check setting, however many middlewares', async () => {
    const { memoFor } = await import('../../src/middleware/answer-memo.js');
    const reader = auth.strategies.get('jwt');
    expect(memoFor(reader, false, 10)).toBe(memoFor(reader, false, 10));
    expect(memoFor(reader, true, 10)).not.toBe(memoFor(reader, false, 10));
    // A second middleware reading alike answers from what the first one remembered.
    const access = await token();
    expect((await call(server.url, '/jwt', { token: access })).status).toBe(200);
    const before = jwtReads;
    const guard = auth.requireAuth({ strategy: 'jwt' });
    const ctx = { headers: { authorization: `Bearer ${access}` }, state: {}, method: 'GET' };
    await guard(ctx as never, async () => {});
    expect(jwtReads).toBe(before);
    expect((ctx.state as { user: { sub: string } }).user.sub).toBe('memo-reader');
  });
});

/**
 * The memo is looked up by the Authorization header as the request holds it when requireAuth()
 * runs, so a middleware before it that rewrites or removes the header is seen, on repeat requests
 * (the memo's hits) as on first ones.
 */
describe('requireAuth() answer memo: a header rewritten by an earlier middleware', () => {
  let auth: Auth;
  let server: Served;
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    auth = testAuth({ checkSession: false });
    for (const id of ['rewrite-a', 'rewrite-b'])
      tokens[id] = (await auth.strategies.get('jwt').writeToken({ id }, 'access')) as string;
    const app = new Koa();
    app.use((ctx, next) => {
      // The ways an app changes the header: through Koa's request, Node's request, or a new object.
      const to = ctx.get('x-rewrite-to');
      if (to === 'none') delete ctx.req.headers.authorization;
      else if (to === 'object')
        ctx.request.headers = {
          ...ctx.request.headers,
          authorization: `Bearer ${tokens['rewrite-b']}`,
        };
      else if (to !== '') ctx.request.headers.authorization = `Bearer ${tokens[to]}`;
      return next();
    });
    app.use(auth.requireAuth({ strategy: 'jwt' }));
    app.use((ctx) => {
      ctx.body = { sub: (ctx.state.user as { sub: string }).sub };
    });
    server = await serve(app);
  });
  afterAll(async () => {
    await server.close();
    await auth.close();
  });

  async function sub(rewriteTo?: string): Promise<string | number> {
    const headers: Record<string, string> = { authorization: `Bearer ${tokens['rewrite-a']}` };
    if (rewriteTo !== undefined) headers['x-rewrite-to'] = rewriteTo;
    const reply = await call(server.url, '/', { headers });
    return reply.status === 200 ? (reply.body as { sub: string }).sub : reply.status;
  }

  it('answers for the rewritten header, not the one the client sent', async () => {
    // Twice each: the second request of each kind is a hit of the memo.
    for (let i = 0; i < 2; i++) {
      expect(await sub()).toBe('rewrite-a');
      expect(await sub('rewrite-b')).toBe('rewrite-b');
      expect(await sub('object')).toBe('rewrite-b');
      expect(await sub()).toBe('rewrite-a');
    }
  });

  it('refuses a request whose header an earlier middleware removed, though its header is memoised', async () => {
    expect(await sub()).toBe('rewrite-a');
    expect(await sub('none')).toBe(401);
    expect(await sub()).toBe('rewrite-a');
  });
});
