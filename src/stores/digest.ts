import * as crypto from 'node:crypto';

type Encoding = 'hex' | 'base64url';

/**
 * Node's one-shot `crypto.hash` (20.12 and later): 0.4 µs for a short string here, against
 * 0.9 µs for a Hash object, its update and its digest. Older Nodes fall back to the Hash object.
 */
const oneShot = (
  crypto as { hash?: ((algorithm: string, data: string, encoding: Encoding) => string) | undefined }
).hash;

/** A string's SHA-256 in `encoding`. */
export const sha256 = (text: string, encoding: Encoding): string =>
  oneShot !== undefined
    ? oneShot('sha256', text, encoding)
    : crypto.createHash('sha256').update(text).digest(encoding);

/**
 * The first 128 bits of a string's SHA-256, written like a UUID: the shape every store keeps as
 * compactly as a random refresh-token id. For ids derived rather than drawn.
 */
export function sha256Uuid(text: string): string {
  const hex = sha256(text, 'hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
