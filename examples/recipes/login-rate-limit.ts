import type { Redis } from 'ioredis';
import type Koa from 'koa';
import type { Auth, RouteContext, TokenUser } from 'koa-jwt-redis';

// auth.routes() on `app`, refusing an ip and name for 15 minutes after 5 wrong passwords.
export function mountLogin(
  app: Koa,
  auth: Auth,
  redis: Redis,
  checkPassword: (body: unknown) => Promise<TokenUser | null>,
) {
  // record() counts and check() reads under the same key, made from the same request.
  const failures = (ctx: RouteContext) =>
    `login-failures:${ctx.ip}:${String((ctx.request.body as { username?: unknown }).username)}`;
  app.use(
    auth
      .routes({
        login: (ctx) => checkPassword(ctx.request.body),
        rateLimit: {
          async check(ctx) {
            const count = Number(await redis.get(failures(ctx)));
            return count >= 5 ? await redis.ttl(failures(ctx)) : 0;
          },
          async record(ctx, outcome) {
            if (outcome === 'failure')
              await redis.multi().incr(failures(ctx)).expire(failures(ctx), 900).exec();
          },
        },
      })
      .routes(),
  );
}
