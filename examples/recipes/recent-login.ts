import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Auth, AuthenticatedState } from 'koa-jwt-redis';

export const recentLogin =
  (maxAgeSeconds: number): Middleware<AuthenticatedState> =>
  (ctx, next) => {
    const age = Date.now() / 1000 - (ctx.state.user.auth_time ?? 0);
    if (age <= maxAgeSeconds) return next();
    // 403, not 401: the token is valid, and a client that refreshes on 401 would loop (a refresh
    // keeps auth_time). The shape is the library's own { error, message }.
    ctx.status = 403;
    ctx.body = { error: 'login_required', message: 'Log in again to continue.' };
  };

// Changing the email takes a login of the last 5 minutes, not just a valid access token.
export function accountRoutes(
  router: Router,
  auth: Auth,
  changeEmail: Middleware<AuthenticatedState>,
) {
  router.post('/account/email', auth.requireAuth(), recentLogin(300), changeEmail);
}
