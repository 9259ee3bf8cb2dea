import type { Context, Middleware } from 'koa';
import { debug, describeError } from '../debug.js';
import { AuthError, UnsupportedError } from '../errors.js';

/** Writes an AuthError as Koa's own handler would, but with the JSON body `{ error, message }`. */
export function writeAuthError(ctx: Context, error: AuthError): void {
  const body = JSON.stringify(error.toJSON());
  ctx.set(error.headers);
  ctx.status = error.status;
  ctx.type = 'application/json';
  ctx.length = Buffer.byteLength(body);
  ctx.body = body;
}

/**
 * Installed on a context only when one of our middlewares throws: if no app middleware handles
 * the AuthError, Koa's final handler calls `ctx.onerror`, and this renders it as JSON. Any other
 * error goes to the app's own `onerror`, untouched.
 */
function onAuthError(this: Context, error: unknown): void {
  const base = (Object.getPrototypeOf(this) as Context).onerror;
  if (!(error instanceof AuthError)) return base.call(this, error as Error);
  this.app.emit('error', error, this);
  if (this.headerSent || !this.writable) return;
  for (const name of this.res.getHeaderNames()) this.res.removeHeader(name);
  try {
    writeAuthError(this, error);
  } catch (failure) {
    // A header Node refuses (a custom strategy's error): the status and JSON body without the
    // error's headers. Koa's own handler would set the same headers and throw again, unhandled.
    debug.auth('could not render %s: %s', error.code, describeError(failure));
    for (const name of this.res.getHeaderNames()) this.res.removeHeader(name);
    this.res.statusCode = error.status;
    this.res.setHeader('Content-Type', 'application/json; charset=utf-8');
    this.res.setHeader('Cache-Control', 'no-store');
    this.res.end(JSON.stringify(error.toJSON()));
    return;
  }
  this.res.end(this.body as string);
}

/**
 * The error with the instance's `realm` first in its `WWW-Authenticate` challenge (RFC 6750 §3),
 * if it has one and no realm yet: a copy, so that an error object thrown again and again (a
 * custom strategy's module-level one, shared by instances of different realms) keeps none.
 */
export function withRealm(error: AuthError, realm: string | undefined): AuthError {
  const challenge = error.headers['WWW-Authenticate'];
  if (realm === undefined || !challenge || challenge.startsWith('Bearer realm=')) return error;
  const params = challenge.slice('Bearer'.length).replace(/^ /, '');
  return copyOf(error, {
    ...error.headers,
    'WWW-Authenticate': `Bearer realm="${realm}"${params ? `, ${params}` : ''}`,
  });
}

/**
 * What `work` resolves to; an AuthError it rejects (or throws) with is given `realm` by
 * {@link withRealm}: a helper's rejection, rendered later by authErrors() or the app, which know
 * no instance, carries the challenge the middlewares would send.
 */
export async function realmOnRejection<T>(
  work: () => T | PromiseLike<T>,
  realm: string | undefined,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw error instanceof AuthError ? withRealm(error, realm) : error;
  }
}

/**
 * A copy of `error` with `headers`, still a native Error of its class (`util.types.isNativeError`,
 * `structuredClone`, `instanceof`), with its other own properties (a frozen error's too, whose
 * `headers` could not be written); its `stack` is the original's, read when asked for
 * (formatting a stack costs microseconds, and a refusal is answered without one).
 * A subclass's `#private` fields are not copied: its methods that read them throw on the copy.
 */
function copyOf(error: AuthError, headers: Record<string, string>): AuthError {
  // No stack of its own is captured, where the limit can be lowered (not under --frozen-intrinsics).
  const limit = Error.stackTraceLimit;
  const lowered = Reflect.set(Error, 'stackTraceLimit', 0);
  let copy: AuthError;
  try {
    copy = new Error(error.message) as AuthError;
  } finally {
    if (lowered) Error.stackTraceLimit = limit;
  }
  Object.setPrototypeOf(copy, Object.getPrototypeOf(error) as object);
  for (const key of Reflect.ownKeys(error)) {
    if (key !== 'stack' && key !== 'headers')
      Object.defineProperty(copy, key, Object.getOwnPropertyDescriptor(error, key)!);
  }
  Object.defineProperty(copy, 'headers', {
    configurable: true,
    enumerable: true,
    writable: true,
    value: headers,
  });
  Object.defineProperty(copy, 'stack', {
    configurable: true,
    get: () => error.stack,
    set(this: object, value: unknown) {
      Object.defineProperty(this, 'stack', { configurable: true, writable: true, value });
    },
  });
  return copy;
}

/** The refusal each request logged where it was thrown: authErrors() does not log it again. */
const logged = new WeakMap<Context, AuthError>();

/** Throws `error` so that app error middleware can catch it, and Koa renders it as JSON if none does. */
export function throwAuthError(ctx: Context, error: AuthError, realm: string | undefined): never {
  ctx.onerror = onAuthError;
  const thrown = withRealm(error, realm);
  if (debug.auth.enabled) {
    debug.auth('%s %s refused: %d %s', ctx.method, ctx.path, error.status, describeError(error));
    logged.set(ctx, thrown);
  }
  throw thrown;
}

/**
 * The AuthError a thrown error is answered as, or undefined for one that is not ours: an
 * UnsupportedError (a helper the strategy lacks) is `strategy_unsupported`, 501.
 */
export function asAuthError(error: unknown): AuthError | undefined {
  if (error instanceof UnsupportedError)
    return new AuthError('strategy_unsupported', error.message, { cause: error });
  return error instanceof AuthError ? error : undefined;
}

/**
 * Renders AuthErrors thrown further down (by `refreshTokens`, `invalidateRefreshToken`, … in your
 * routes) as JSON `{ error, message }` with their status and headers, and an UnsupportedError as
 * `strategy_unsupported` (501). Other errors pass through.
 * @example app.use(authErrors());
 */
export function authErrors(): Middleware {
  return async function authErrorsMiddleware(ctx, next) {
    try {
      await next();
    } catch (thrown) {
      const error = asAuthError(thrown);
      if (error === undefined) throw thrown;
      if (logged.get(ctx) !== error)
        debug.auth('%s %s → %d %s', ctx.method, ctx.path, error.status, describeError(error));
      writeAuthError(ctx, error);
    }
  };
}
