import createDebug from 'debug';
import { AuthError } from './errors.js';

/**
 * Debug logging through the `debug` package, off unless `DEBUG=koa-jwt-redis:*` (or one of the
 * namespaces below) is set. Never given a token, a secret or a key: callers pass codes, ids,
 * routes and counts, and {@link describeError} redacts anything shaped like a JWT besides.
 */
export const debug = {
  /** createAuth: the resolved setup (never the secret or keys, only their kinds and ids). */
  config: createDebug('koa-jwt-redis:config'),
  /** Requests refused by requireAuth, getData, authorize, authErrors. */
  auth: createDebug('koa-jwt-redis:auth'),
  /** The auth routes: logins, refreshes, logouts and their refusals. */
  routes: createDebug('koa-jwt-redis:routes'),
  /** Audit events as they are emitted (login, refresh, logout, revoke_all, refresh_reused). */
  events: createDebug('koa-jwt-redis:events'),
  /** The session store: failures and timeouts, readiness pings. */
  store: createDebug('koa-jwt-redis:store'),
};

// Three base64url segments, the first a JSON object: any JWT, whatever it is called.
const JWT_LIKE = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;

/** An error for a log line: its code or name and its message, JWT-shaped text redacted. */
export function describeError(error: unknown): string {
  if (error instanceof AuthError) {
    const cause = error.cause === undefined ? '' : ` (cause: ${describeError(error.cause)})`;
    return `${error.code}: ${redact(error.message)}${cause}`;
  }
  // JSON.parse's message quotes the start of its input ('Unexpected token 'S', "Sensitive-"...'),
  // which here is a decoded token segment: the message is left out, its kind is enough.
  if (error instanceof SyntaxError)
    return `${error.name}: (message not logged: it quotes the input)`;
  if (error instanceof Error) return `${error.name}: ${redact(error.message)}`;
  return typeof error;
}

/** Replaces JWT-shaped substrings, and cuts the text to a log line's length. */
export function redact(text: string): string {
  return text.replace(JWT_LIKE, '[token]').slice(0, 300);
}
