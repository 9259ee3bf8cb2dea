import type { Context } from 'koa';
import type { TokenSource, WebOptions } from '../config/web.js';

/*
 * Where a request's credentials come from: the Authorization header and the cookies. Every
 * middleware and route reads tokens through here, so the sources and their order have one home.
 */

// RFC 6750 §2.1: "Bearer" (any case) then the token; the token charset is checked by the verifier.
const BEARER = /^Bearer +(\S+) *$/i;

/** The bearer token of the request, or undefined. Never the query string (RFC 6750 §5.3). */
export function bearerToken(ctx: Pick<Context, 'headers'>): string | undefined {
  const header = ctx.headers.authorization;
  if (header === undefined) return undefined;
  return BEARER.exec(header)?.[1];
}

/** True when the request carries an Authorization bearer header (not an ambient credential). */
export const hasBearerHeader = (ctx: Pick<Context, 'headers'>): boolean =>
  bearerToken(ctx) !== undefined;

/** The value of a request cookie, or undefined. The first one wins (the most specific Path). */
export function readCookie(ctx: Pick<Context, 'get'>, name: string): string | undefined {
  const header = ctx.get('cookie');
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
      value = value.slice(1, -1);
    return value.length > 0 ? value : undefined;
  }
  return undefined;
}

/** The request's access token and where it was found, looking in `tokenSources` order. */
export function findAccessToken(
  ctx: Pick<Context, 'get' | 'headers'>,
  web: WebOptions,
): { token: string; source: TokenSource } | undefined {
  for (const source of web.tokenSources) {
    const token =
      source === 'header' ? bearerToken(ctx) : readCookie(ctx, web.cookies.names.access);
    if (token !== undefined) return { token, source };
  }
  return undefined;
}
