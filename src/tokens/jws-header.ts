import { AuthError } from '../errors.js';

/*
 * A token's JWS header as verification reads it: parsed once per distinct header (a deployment
 * signs with a handful), and the parameters that are never honoured.
 */

/** Header parameters that point elsewhere for keys or demand extensions: never honoured. */
export const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit'] as const;

/** The first of FORBIDDEN_HEADERS that `header` carries: such a token is refused, not followed. */
export function forbiddenHeader(header: Readonly<Record<string, unknown>>): string | undefined {
  for (const name of FORBIDDEN_HEADERS) if (header[name] !== undefined) return name;
  return undefined;
}

/** The token's header, decoded; a request error when it is no JSON object. */
export function parseHeader(segment: string): Record<string, unknown> {
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch (cause) {
    throw new AuthError('token_invalid', 'The token header is not valid JSON.', { cause });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new AuthError('token_invalid', 'The token header is not a JSON object.');
  }
  return header as Record<string, unknown>;
}

/**
 * Headers already parsed, by their encoded form: a deployment signs with a handful (one per key
 * and token type), so each refresh and uncached check skips a base64url decode and a JSON.parse.
 * Only headers that named a key of the ring go in, frozen (they are only read); at most
 * KNOWN_HEADERS of them, and a full map starts over, so rotated keys' headers get their turn and
 * a flood of odd ones costs no more than parsing each.
 */
const knownHeaders = new Map<string, Readonly<Record<string, unknown>>>();
const KNOWN_HEADERS = 64;

/** Keeps a header that named a key of the ring (see knownHeaders). */
export function rememberHeader(segment: string, header: Record<string, unknown>): void {
  if (segment.length > 512) return;
  if (knownHeaders.size >= KNOWN_HEADERS) knownHeaders.clear();
  knownHeaders.set(segment, Object.freeze(header));
}

/** The header `segment` encodes, when rememberHeader kept it. */
export const knownHeader = (segment: string): Readonly<Record<string, unknown>> | undefined =>
  knownHeaders.get(segment);
