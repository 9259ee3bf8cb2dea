import type { Context } from 'koa';

/*
 * The URL paths of the ready-made routes: what a prefix or a refresh cookie's Path may be, and the
 * path the router was reached at, however it is mounted (a parent router's prefix, koa-mount).
 */

export const PREFIX = /^(\/[A-Za-z0-9._~-]+)*$/;
// Path characters safe inside a Set-Cookie attribute: no `;`, no spaces, no control characters.
export const COOKIE_PATH = /^\/[A-Za-z0-9._~!$&'()*+,=:@%/-]*$/;

/**
 * The URL path this router's routes live under for this request, from the raw request URL (which
 * koa-mount and parent routers leave intact): the request path minus the route's own `depth`
 * segments (`/login` is 1, `/sessions/:id` is 2). Undefined when it is not usable as a cookie Path.
 */
export function mountedBase(ctx: Context, depth: number): string | undefined {
  const raw = ctx.originalUrl ?? ctx.url;
  let path = raw.split('?', 1)[0]!.split('#', 1)[0]!;
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  const segments = path.split('/');
  if (segments.length - 1 < depth) return undefined;
  const base = segments.slice(0, segments.length - depth).join('/');
  return base === '' || COOKIE_PATH.test(base) ? base : undefined;
}
