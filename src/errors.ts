/**
 * Every failure this library reports at request time is an {@link AuthError} with a stable
 * `code` that callers can `switch` on; the message is for humans and may change.
 */
export type AuthErrorCode =
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'token_revoked'
  | 'refresh_reused'
  | 'refresh_conflict'
  | 'store_unavailable'
  | 'invalid_request'
  | 'unsupported_media_type'
  | 'body_too_large'
  | 'invalid_credentials'
  | 'csrf_failed'
  | 'insufficient_scope'
  | 'origin_forbidden'
  | 'session_not_found'
  | 'rate_limited'
  | 'strategy_unsupported';

const STATUS: Record<AuthErrorCode, number> = {
  token_missing: 401,
  token_invalid: 401,
  token_expired: 401,
  token_revoked: 401,
  refresh_reused: 401,
  // Only with `refreshGracePeriod`: a concurrent request already rotated this token.
  refresh_conflict: 409,
  store_unavailable: 503,
  // Web apps (cookie delivery and the auth router).
  invalid_request: 400,
  unsupported_media_type: 415,
  body_too_large: 413,
  invalid_credentials: 401,
  csrf_failed: 403,
  // authorize(): a valid token without the scope, role or claim the route needs (RFC 6750 §3.1).
  insufficient_scope: 403,
  origin_forbidden: 403,
  session_not_found: 404,
  rate_limited: 429,
  // auth.routes(): the route's strategy cannot do this (sessions of the stateless `jwt` strategy).
  strategy_unsupported: 501,
};

export interface AuthErrorOptions {
  cause?: unknown;
  /** Extra response headers; `WWW-Authenticate` is filled in for 401s. */
  headers?: Record<string, string> | undefined;
}

/**
 * A request-time authentication failure. `status` and `expose` let Koa's own error handling
 * render it; `headers` carries `WWW-Authenticate` (RFC 6750) for 401s and `Retry-After` for 503s.
 */
export class AuthError extends Error {
  readonly code: AuthErrorCode;
  readonly status: number;
  readonly statusCode: number;
  readonly expose = true;
  headers: Record<string, string>;

  constructor(code: AuthErrorCode, message: string, options: AuthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = STATUS[code];
    this.statusCode = this.status;
    this.headers = options.headers ?? defaultHeaders(code);
  }

  /** The JSON body sent to clients. Never contains a token, a secret or a stack. */
  toJSON(): { error: AuthErrorCode; message: string } {
    return { error: this.code, message: this.message };
  }
}

function defaultHeaders(code: AuthErrorCode): Record<string, string> {
  if (code === 'store_unavailable') return { 'Retry-After': '1', 'Cache-Control': 'no-store' };
  if (code === 'refresh_conflict') return { 'Cache-Control': 'no-store' };
  // 401 needs a challenge; a wrong password is not an invalid token.
  if (code === 'invalid_credentials')
    return { 'WWW-Authenticate': 'Bearer', 'Cache-Control': 'no-store' };
  if (STATUS[code] !== 401) return { 'Cache-Control': 'no-store' };
  if (code === 'token_missing')
    return { 'WWW-Authenticate': 'Bearer', 'Cache-Control': 'no-store' };
  return {
    'WWW-Authenticate': 'Bearer error="invalid_token"',
    'Cache-Control': 'no-store',
  };
}

/** Thrown by `createAuth` (at start-up, never per request) when an option is wrong. */
export class AuthConfigError extends Error {
  readonly code = 'invalid_option' as const;
  /** The option that is wrong, e.g. `secret` or `keys[1].publicKey`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super(`koa-jwt-redis: option \`${option}\`: ${message}`, options);
    this.name = new.target.name;
    this.option = option;
  }
}

/**
 * Thrown by a verifier's `ready()` when the JWKS host did not answer (a connection refused,
 * reset or timed out, no route, HTTP 5xx, 408 or 429): an outage that may pass, where a host name
 * that does not resolve, a certificate that does not verify or a JWKS that is wrong (a 404, not a
 * JWK Set, no usable key) is an {@link AuthConfigError} on `jwksUri`.
 */
export class JwksUnavailableError extends Error {
  readonly code = 'jwks_unavailable' as const;

  constructor(message: string, options?: { cause?: unknown }) {
    super(`koa-jwt-redis: ${message}`, options);
    this.name = new.target.name;
  }
}

/**
 * Makes `instanceof cls` hold for instances from the package's other build as well: an app that
 * loads both the ESM and the CommonJS entry (one through `import`, a dependency through
 * `require`) has two copies of every class, and an AuthError thrown by one would otherwise not
 * be one to the other (rendered as a 500 instead of its 401). Both copies mark their prototype
 * with the same registered symbol. A subclass's own `instanceof` keeps the usual meaning. The
 * symbol names no version, unlike the default instance's (auth.ts): an AuthError from another
 * installed version is rendered as what it is (its status, code, message and headers, which every
 * version has), not as a 500.
 */
function sharedAcrossBuilds(cls: abstract new (...args: never[]) => object, name: string): void {
  const brand = Symbol.for(`koa-jwt-redis.${name}`);
  Object.defineProperty(cls.prototype, brand, { value: true });
  Object.defineProperty(cls, Symbol.hasInstance, {
    value(this: unknown, value: unknown): boolean {
      if (this !== cls) return Function.prototype[Symbol.hasInstance].call(this, value);
      return typeof value === 'object' && value !== null && brand in value;
    },
  });
}
sharedAcrossBuilds(AuthError, 'AuthError');
sharedAcrossBuilds(AuthConfigError, 'AuthConfigError');
sharedAcrossBuilds(JwksUnavailableError, 'JwksUnavailableError');

/** Wraps anything a session store threw (connection lost, timeout, script error) as a 503. */
export function storeUnavailable(cause: unknown): AuthError {
  if (cause instanceof AuthError) return cause;
  return new AuthError(
    'store_unavailable',
    'The session store is unavailable; try again shortly.',
    {
      cause,
    },
  );
}

/** A helper was called on a strategy that cannot do it (e.g. `listSessions` on the stateless `jwt` strategy). */
export class UnsupportedError extends Error {
  readonly code = 'strategy_unsupported' as const;
  /**
   * A route of `auth.routes()` that reaches it (e.g. `GET /auth/sessions` on the stateless
   * strategy) answers it as the AuthError `strategy_unsupported` (501, JSON), not as a 500.
   */
  readonly status = 501;
  readonly expose = true;

  constructor(strategy: string, helper: string, why: string) {
    super(`koa-jwt-redis: the "${strategy}" strategy does not support ${helper}: ${why}`);
    this.name = new.target.name;
  }
}
sharedAcrossBuilds(UnsupportedError, 'UnsupportedError');

/**
 * `token_invalid` because the header names no key of the ring. Internal: lets a verifier that
 * loads keys from a JWKS tell "maybe a new key" apart from every other bad token.
 */
export class UnknownKeyError extends AuthError {
  constructor() {
    super('token_invalid', 'The token was not signed by a known key with its algorithm.');
  }
}
