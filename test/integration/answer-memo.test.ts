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

  const token = () => auth.strategies.get('jwt').writeToken({ id: 'memo-reader' }, 'access');

  it('answers a built-in strategy’s repeat requests without reading the token again', async () => {
    const access = (await token()) as string;
    const before = jwtReads;
    for (let i = 0; i < 5; i++)
      expect((await call(server.url, '/jwt', { token: access })).status).toBe(200);
    expect(jwtReads - before).toBe(1);
  });

  it('never answers for a copy or wrapper of a built-in strategy', async () => {
    const access = (await token()) as string;
    const before = wrapperReads;
    for (let i = 0; i < 5; i++)
      expect((await call(server.url, '/wrapped', { token: access })).status).toBe(200);
    expect(wrapperReads - before).toBe(5);
  });

  it('keeps only the plain "Bearer <token>" form: a padded header is read every time', async () => {
    const access = (await token()) as string;
    const before = jwtReads;
    for (let i = 0; i < 3; i++) {
      const reply = await call(server.url, '/jwt', {
        headers: { authorization: `Bearer      ${access}` },
      });
      expect(reply.status).toBe(200);
    }
    expect(jwtReads - before).toBe(3);
  });

  it('is one memo per instance, reader and session-check setting, however many middlewares', async () => {
    const { memoFor } = await import('../../src/middleware/answer-memo.js');
    const reader = auth.strategies.get('jwt');
    expect(memoFor(reader, false, 10)).toBe(memoFor(reader, false, 10));
    expect(memoFor(reader, true, 10)).not.toBe(memoFor(reader, false, 10));
    // A second middleware reading alike answers from what the first one remembered.
    const access = (await token()) as string;
    expect((await call(server.url, '/jwt', { token: access })).status).toBe(200);
    const before = jwtReads;
    const guard = auth.requireAuth({ strategy: 'jwt' });
    const ctx = { headers: { authorization: `Bearer ${access}` }, state: {}, method: 'GET' };
    await guard(ctx as never, async () => {});
    expect(jwtReads).toBe(before);
    expect((ctx.state as { user: { sub: string } }).user.sub).toBe('memo-reader');
  });
});
