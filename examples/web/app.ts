import { readFileSync } from 'node:fs';
import Router from '@koa/router';
import Koa from 'koa';
import type { Auth } from 'koa-jwt-redis';

/** A stand-in user table; a real app checks a password hash here. */
const USERS = new Map([
  ['alice', { id: 1, name: 'alice', password: 'wonderland' }],
  ['bob', { id: 2, name: 'bob', password: 'builder' }],
]);

function checkPassword(body: unknown): { id: number; name: string } | null {
  const { username, password } = (body ?? {}) as { username?: unknown; password?: unknown };
  const user = typeof username === 'string' ? USERS.get(username) : undefined;
  return user && user.password === password ? { id: user.id, name: user.name } : null;
}

const PAGE = readFileSync(new URL('./index.html', import.meta.url), 'utf8');

/**
 * One page and the auth routes. The auth instance should use `tokenDelivery: 'cookie'`: the page's
 * script never sees a token, only the CSRF cookie it echoes in a header.
 */
export function createWebApp(auth: Auth): Koa {
  const app = new Koa();
  const { names } = auth.options.web.cookies;
  // The page learns the CSRF cookie and header names from the server (they depend on `secure`).
  const page = PAGE.replace('{{CSRF_COOKIE}}', names.csrf).replace(
    '{{CSRF_HEADER}}',
    auth.options.web.csrf.header,
  );

  const authRoutes = auth.routes({ login: (ctx) => checkPassword(ctx.request.body) });
  const pages = new Router();
  pages.get('/', (ctx) => {
    ctx.type = 'html';
    ctx.set(
      'Content-Security-Policy',
      "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    );
    ctx.body = page;
  });
  pages.get('/me', auth.requireAuth(), (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const { sub, name, exp } = ctx.state.user as typeof ctx.state.user & { name?: string };
    ctx.body = { id: sub, name, expiresAt: new Date(exp * 1000).toISOString() };
  });

  app.use(authRoutes.routes()).use(authRoutes.allowedMethods());
  app.use(pages.routes()).use(pages.allowedMethods());
  return app;
}
