import Router from '@koa/router';
import { type Auth, AuthError } from 'koa-jwt-redis';

// Mount with app.use(healthRoutes(auth).routes()).
export function healthRoutes(auth: Auth) {
  const health = new Router();
  health.get('/healthz', (ctx) => {
    ctx.body = { status: 'alive' }; // liveness: the process answers; never ask Redis here
  });
  health.get('/readyz', async (ctx) => {
    try {
      await auth.ping();
      ctx.body = { status: 'ready' };
    } catch (error) {
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = {
        status: 'unavailable',
        error: error instanceof AuthError ? error.code : 'unknown',
      };
    }
  });
  return health;
}
