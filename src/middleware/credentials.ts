import type { Context } from 'koa';
import type { TokenSource, WebOptions } from '../config/web.js';
import { AuthError } from '../errors.js';

/*
 * Where a request's credentials come from: the Authorization header and the cookies. Every
 * middleware and route reads tokens through here, so the sources and their order have one home.
 */

// RFC 6750 §2.1: "Bearer" (any case), one or more spaces, then the token; the token charset is
// checked by the verifier.
const BEARER = /^Bearer +(\S+) *$/i;
/** The Bearer scheme (not a longer name) followed by more than spaces: a token was meant to be there. */
const BEARER_WITH_TEXT = /^Bearer(?![\w-])\s*\S/i;

/**
 * An Authorization header that names the Bearer scheme but is not "Bearer <token>": a tab after
 * the scheme, two tokens, "Bearer a, Bearer b". A credential was given, so this is 401
 * `token_invalid` (with `error="invalid_token"`), not the `token_missing` of a request without
 * one, and it never falls through to a cookie, as a bad bearer token does not.
 */
const malformedBearer = () =>
  new AuthError(
    'token_invalid',
    'The Authorization header is not "Bearer <token>": one token after the scheme and a space.',
  );

const MALFORMED = Symbol('malformed');

/** What the Authorization header holds: a bearer token, none, or a malformed Bearer credential. */
function readBearer(ctx: Pick<Context, 'headers'>): string | undefined | typeof MALFORMED {
  const header = ctx.headers.authorization;
  if (header === undefined) return undefined;
  const token = BEARER.exec(header)?.[1];
  if (token === undefined && BEARER_WITH_TEXT.test(header)) return MALFORMED;
  return token;
}

/**
 * The bearer token of the request, or undefined when there is no Authorization header, it names
 * another scheme, or it is "Bearer" alone. A malformed Bearer header throws {@link malformedBearer}.
 * Never the query string (RFC 6750 §5.3).
 */
export function bearerToken(ctx: Pick<Context, 'headers'>): string | undefined {
  const found = readBearer(ctx);
  if (found === MALFORMED) throw malformedBearer();
  return found;
}

/**
 * True when the request carries an Authorization bearer header (not an ambient credential): for
 * the CSRF checks, a malformed one is none.
 */
export const hasBearerHeader = (ctx: Pick<Context, 'headers'>): boolean =>
  typeof readBearer(ctx) === 'string';

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

/**
 * The request's access token and where it was found, looking in `tokenSources` order. A
 * malformed Bearer header, met before a token is found, ends the search as a bad token does: it
 * throws (see {@link bearerToken}), or with `lenient` (getToken, which never fails) finds none.
 */
export function findAccessToken(
  ctx: Pick<Context, 'get' | 'headers'>,
  web: WebOptions,
  lenient = false,
): { token: string; source: TokenSource } | undefined {
  for (const source of web.tokenSources) {
    const token = source === 'header' ? readBearer(ctx) : readCookie(ctx, web.cookies.names.access);
    if (token === MALFORMED) {
      if (lenient) return undefined;
      throw malformedBearer();
    }
    if (token !== undefined) return { token, source };
  }
  return undefined;
}
