import Router from '@koa/router';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import { type Auth, AuthError, authErrors } from 'koa-jwt-redis';

/** A stand-in user table; a real app checks a password hash here. */
const USERS = new Map([
  ['alice', { id: 1, name: 'alice', role: 'admin', password: 'wonderland' }],
  ['bob', { id: 2, name: 'bob', role: 'member', password: 'builder' }],
]);

/** JSON bodies; a malformed one is a plain 400, not a logged server error. */
const jsonBody = koaBody({
  onError: (_error, ctx) => ctx.throw(400, 'The request body is not valid JSON.'),
});

function refreshTokenOf(body: unknown): string {
  const token = (body as { refresh_token?: unknown } | undefined)?.refresh_token;
  if (typeof token !== 'string')
    throw new AuthError('token_missing', 'Send { "refresh_token": "…" }.');
  return token;
}

/** The example app: login, refresh, logout, and routes that need a valid access token. */
export function createApp(auth: Auth): Koa {
  const app = new Koa();
  const router = new Router();

  // Renders AuthErrors from the helpers below as JSON { error, message }.
  app.use(authErrors());

  router.post('/login', jsonBody, async (ctx) => {
    const { username, password } = (ctx.request.body ?? {}) as {
      username?: unknown;
      password?: unknown;
    };
    const user = typeof username === 'string' ? USERS.get(username) : undefined;
    // Thrown, so that authErrors() renders it like every other 401: JSON, WWW-Authenticate, no-store.
    if (!user || user.password !== password)
      throw new AuthError('invalid_credentials', 'Wrong username or password.');
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await auth.generateTokens(user, { ctx });
  });

  router.post('/refresh', jsonBody, async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await auth.refreshTokens(refreshTokenOf(ctx.request.body), { ctx });
  });

  router.post('/logout', jsonBody, async (ctx) => {
    await auth.invalidateRefreshToken(refreshTokenOf(ctx.request.body));
    ctx.status = 204;
  });

  router.get('/public', auth.getData(), (ctx) => {
    ctx.body = { hello: ctx.state.user ? ctx.state.user.sub : 'stranger' };
  });

  // Everything below needs a valid access token.
  router.use(auth.requireAuth());
  router.get('/me', (ctx) => {
    ctx.body = ctx.state.user;
  });
  router.get('/sessions', async (ctx) => {
    ctx.body = await auth.listSessions(ctx.state.user.sub);
  });
  router.post('/logout-all', async (ctx) => {
    ctx.body = { revoked: await auth.revokeAllSessions(ctx.state.user.sub) };
  });

  app.use(router.routes()).use(router.allowedMethods());
  return app;
}
