import { isOneOrMore, isWholeNumber } from '../config/validate.js';
import { FORBIDDEN_HEADERS } from './jws-header.js';

/** Per-token settings of `writeToken(user, kind, options)`, checked by {@link checkSignOverrides}. */
export interface SignOverrides {
  lifetime?: number | undefined;
  audience?: string | string[] | undefined;
  headers?: Record<string, unknown> | undefined;
}

/** The longest `lifetime` a token may be given, in seconds: a year. */
export const MAX_LIFETIME = 31_536_000;

/** Header parameters a caller may not set: the library's own, and those verifiers refuse. */
const RESERVED_HEADERS = new Set<string>(['alg', 'typ', 'kid', 'cty', 'b64', ...FORBIDDEN_HEADERS]);

/**
 * Validates per-token options (a wrong one is a TypeError naming it: an app bug, not a request
 * error) and returns only what was given.
 */
export function checkSignOverrides(options: {
  lifetime?: unknown;
  audience?: unknown;
  headers?: unknown;
}): SignOverrides | undefined {
  const { lifetime, audience, headers } = options;
  if (lifetime === undefined && audience === undefined && headers === undefined) return undefined;
  const out: SignOverrides = {};
  if (lifetime !== undefined) {
    if (!isWholeNumber(lifetime, 1, MAX_LIFETIME))
      throw new TypeError(
        `koa-jwt-redis: \`lifetime\` must be a whole number of seconds from 1 to ${MAX_LIFETIME}`,
      );
    out.lifetime = lifetime;
  }
  if (audience !== undefined) {
    if (!isOneOrMore(audience))
      throw new TypeError(
        'koa-jwt-redis: `audience` must be a non-empty string or a non-empty list of them',
      );
    out.audience = audience as string | string[];
  }
  if (headers !== undefined) {
    if (headers === null || typeof headers !== 'object' || Array.isArray(headers))
      throw new TypeError('koa-jwt-redis: `headers` must be an object of JWS header parameters');
    for (const name of Object.keys(headers)) {
      if (
        RESERVED_HEADERS.has(name) ||
        Object.prototype.hasOwnProperty.call(Object.prototype, name)
      )
        throw new TypeError(
          `koa-jwt-redis: the header "${name}" is set by the library or refused by verifiers; leave it out`,
        );
    }
    out.headers = { ...(headers as Record<string, unknown>) };
  }
  return out;
}
