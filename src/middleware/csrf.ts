import { timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import { AuthError } from '../errors.js';
import type { WebOptions } from '../config/web.js';
import { readCookie } from './credentials.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** Methods that may change state and so need CSRF proof when cookies authenticate them. */
export const isUnsafeMethod = (method: string): boolean => !SAFE_METHODS.has(method.toUpperCase());

/**
 * The origin this request was sent to. Built from protocol and host, not `ctx.origin`: Koa 3
 * returns the request's `Origin` header there, which would make every origin its own.
 */
function ownOrigin(ctx: Pick<Context, 'protocol' | 'host'>): string | undefined {
  try {
    return new URL(`${ctx.protocol}://${ctx.host}`).origin;
  } catch {
    return undefined;
  }
}

/**
 * Refuses a request whose `Origin` (or, without one, `Referer`) is neither the request's own origin
 * nor an allowed one. Requests with neither header (non-browser clients) pass to the proof check.
 */
export function checkOrigin(ctx: Context, web: WebOptions): void {
  let source = ctx.get('origin');
  if (!source) {
    const referer = ctx.get('referer');
    if (!referer) return;
    try {
      source = new URL(referer).origin;
    } catch {
      source = 'null';
    }
  }
  if (source !== 'null' && (source === ownOrigin(ctx) || web.csrf.allowedOrigins.has(source)))
    return;
  throw new AuthError(
    'origin_forbidden',
    'Requests from this origin may not use the session cookies.',
  );
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * `session`: the CSRF header must equal the CSRF cookie (double submit). `pre-session` (login, or
 * a refresh token sent in the body): no cookie exists yet, so the custom header must be present,
 * which a cross-origin form or a simple cross-origin request cannot add.
 */
export type CsrfProof = 'session' | 'pre-session';

/** Origin check, then the proof. Throws AuthError `origin_forbidden` / `csrf_failed` (403). */
export function checkCsrf(ctx: Context, web: WebOptions, proof: CsrfProof): void {
  checkOrigin(ctx, web);
  const sent = ctx.get(web.csrf.header);
  if (!sent)
    throw new AuthError(
      'csrf_failed',
      // No CSRF cookie yet before a login: any value proves a same-origin script sent it.
      `Send the ${web.csrf.header} header with this request (${proof === 'pre-session' ? 'any value before login; after it, ' : ''}the value of the ${web.cookies.names.csrf} cookie).`,
    );
  if (proof === 'pre-session') return;
  const expected = readCookie(ctx, web.cookies.names.csrf);
  if (expected === undefined || !sameSecret(sent, expected)) {
    throw new AuthError(
      'csrf_failed',
      `The ${web.csrf.header} header does not match the ${web.cookies.names.csrf} cookie.`,
    );
  }
}
