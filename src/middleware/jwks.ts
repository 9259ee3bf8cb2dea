import { createHash } from 'node:crypto';
import type { Middleware } from 'koa';
import { onlyKnown, plainObject, wholeNumber } from '../config/validate.js';
import { AuthConfigError } from '../errors.js';
import type { PublicJwk } from '../keys/jwk.js';

export interface JwksOptions {
  /** Where the set is served. @default '/.well-known/jwks.json' */
  path?: string | undefined;
  /**
   * `max-age` of `Cache-Control: public`, in seconds. Verifiers and caches may hold the set this
   * long, so wait at least this long between publishing a new key and signing with it.
   * @default 300
   */
  maxAge?: number | undefined;
}

/** A path as a request line carries it: printable ASCII after "/", no query or fragment. */
const URL_PATH = /^\/[\x21-\x22\x24-\x3e\x40-\x7e]*$/;

export const JWKS_DEFAULTS = { path: '/.well-known/jwks.json', maxAge: 300 } as const;

/** Every option of auth.jwks(); `satisfies` keeps this list complete. */
const JWKS_OPTIONS = { path: true, maxAge: true } as const satisfies Record<
  keyof JwksOptions,
  true
>;

/**
 * Serves a JWK Set on GET and HEAD of one path; every other request passes through. The body,
 * its ETag and the headers are computed here, once: a request only compares and sends them.
 */
export function createJwksMiddleware(
  set: { keys: PublicJwk[] },
  options: JwksOptions = {},
): Middleware {
  const given = plainObject('jwks', options);
  onlyKnown('jwks', given, Object.keys(JWKS_OPTIONS));
  const { path = JWKS_DEFAULTS.path, maxAge = JWKS_DEFAULTS.maxAge } = given;
  // Matched against ctx.path, which holds no query or fragment and keeps the request's escapes:
  // a path with `?`, `#`, a space or a non-ASCII letter would never match, serving nothing.
  if (typeof path !== 'string' || !URL_PATH.test(path))
    throw new AuthConfigError(
      'jwks.path',
      'must be a URL path as requests send it: starting with "/", without a query (?), a fragment (#), spaces or non-ASCII characters',
    );
  wholeNumber('jwks.maxAge', maxAge, 0, 86_400);
  if (set.keys.length === 0) {
    throw new AuthConfigError(
      'keys',
      'jwks() has nothing to publish: the key ring holds only HS secrets, which are never published. Add an RS*, PS*, ES* or EdDSA key.',
    );
  }
  const body = JSON.stringify(set);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  const cacheControl = `public, max-age=${maxAge}`;

  return async function jwks(ctx, next) {
    if (ctx.path !== path || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    ctx.set('Cache-Control', cacheControl);
    ctx.etag = etag;
    ctx.type = 'application/json';
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = body;
  };
}
