import Router from '@koa/router';
import Koa from 'koa';
import { type Auth, koaJwtStrategy } from 'koa-jwt-redis';

/**
 * An app moving from koa-jwt to koa-jwt-redis. Before, it had:
 *
 *   app.use(jwt({ secret: OLD_SECRET, passthrough: true, key: 'user' }));   // koa-jwt
 *
 * and clients held long-lived koa-jwt tokens signed with OLD_SECRET. Now logins go through
 * `auth.routes()` and get the new tokens; until `until`, the old tokens are still accepted on the
 * app's routes, read-only: nothing new is ever signed with the old secret.
 */

/** The users; a real app checks a password hash. */
const USERS = new Map([
  ['alice', { id: 1, username: 'alice', role: 'admin', password: 'wonderland' }],
  ['bob', { id: 2, username: 'bob', role: 'member', password: 'builder' }],
]);

export interface MigrationOptions {
  /** The secret the koa-jwt middleware verified with. */
  oldSecret: string;
  /** The end of the migration window. */
  until: Date;
}

export function createMigratingApp(auth: Auth, { oldSecret, until }: MigrationOptions): Koa {
  // Read-only: it accepts koa-jwt tokens and the new access tokens, and refuses to issue any.
  auth.strategies.register('koa-jwt', koaJwtStrategy({ secret: oldSecret, until }));
  const app = new Koa();

  // Logins, refreshes, logouts and sessions: the default strategy, so only new tokens come out.
  const authRoutes = auth.routes({
    login: (ctx) => {
      const { username, password } = ctx.request.body as { username?: unknown; password?: unknown };
      const user = typeof username === 'string' ? USERS.get(username) : undefined;
      return user && user.password === password
        ? { id: user.id, username: user.username, role: user.role }
        : null;
    },
  });
  app.use(authRoutes.routes()).use(authRoutes.allowedMethods());

  const router = new Router();
  // koa-jwt without passthrough → requireAuth, naming the migration strategy.
  const requireUser = auth.requireAuth({ strategy: 'koa-jwt' });
  // koa-jwt with passthrough: true → getData: the user when the token is good, else anonymous.
  const maybeUser = auth.getData({ strategy: 'koa-jwt' });

  router.get('/me', requireUser, (ctx) => {
    // koa-jwt's payload is there as it was (id, username, …), plus `sub`, the user id as a string.
    ctx.body = ctx.state.user;
  });
  router.get('/greeting', maybeUser, (ctx) => {
    const user = ctx.state.user as { username?: string } | undefined;
    ctx.body = { hello: user?.username ?? 'stranger' };
  });
  router.get('/token', requireUser, (ctx) => {
    // koa-jwt's `tokenKey` habit: the raw token is on ctx.state.token.
    ctx.body = { length: ctx.state.token.length };
  });
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}
