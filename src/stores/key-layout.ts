import { sha256 } from './digest.js';
import { BASE64URL } from './record-codec.js';

/**
 * Where a user's sessions are: the hash (`key`), the session cache's entry for it (`entry`),
 * and what the user's family fields start with in it (`owner`, empty in a hash of one user).
 */
export interface Place {
  key: string;
  entry: string;
  owner: string;
}

/** Characters of a user id's SHA-256, in base64url, that tag its fields in a shared hash: 96 bits. */
const OWNER_CHARS = 16;

/**
 * The Redis store's key names. Per user (the default): one hash per user, `<prefix>{u:<id>}`
 * (one hash tag, so one Cluster slot). Shared (`keyBuckets`: N): each user in one of N hashes,
 * `<prefix>{b:<n>}`, chosen by the SHA-256 of the user id, whose first 96 bits, in 16 base64url
 * characters, lead each of the user's field names (the owner tag). A key costs Redis about 130
 * bytes whatever it holds, more than a whole session record, so sharing keys is what takes a
 * one-session user under 200 bytes.
 */
export class KeyLayout {
  /** What every user's key starts with, before the URI-encoded id (or hash number) and the closing `}`. */
  readonly keyHead: string;
  /** keyHead as Redis names it, the client's own prefix in front: what invalidations name. */
  readonly redisHead: string;
  /** The last user placed in the shared layout: one request asks for the same user several times. */
  private lastPlaced: { userId: string; place: Place } | undefined;

  constructor(
    keyPrefix: string,
    /** The shared layout's number of hashes; 0 for a hash per user. */
    readonly buckets: number,
    /** The client's own `keyPrefix`, which Redis sees in front of ours (in invalidations too). */
    clientPrefix: string,
  ) {
    this.keyHead = `${keyPrefix}{${buckets > 0 ? 'b' : 'u'}:`;
    this.redisHead = clientPrefix + this.keyHead;
  }

  /**
   * The session cache's entry for the hash `redisKey` names (as Redis names it, client prefix
   * included), or undefined for any other key. In the per-user layout the entry is the user id,
   * so a session check builds no key string; invalidations, which name keys, come back to ids
   * through here. In the shared layout it is the hash's number.
   */
  entryOfKey(redisKey: string): string | undefined {
    const head = this.redisHead;
    if (!redisKey.startsWith(head) || !redisKey.endsWith('}')) return undefined;
    const inner = redisKey.slice(head.length, -1);
    if (this.buckets > 0) return /^(0|[1-9][0-9]*)$/.test(inner) ? inner : undefined;
    try {
      return decodeURIComponent(inner);
    } catch {
      return undefined;
    }
  }

  private key(userId: string): string {
    // encodeURIComponent escapes { and }, so a user id can never break out of its hash tag.
    return `${this.keyHead}${encodeURIComponent(userId)}}`;
  }

  /** Where the user's sessions are (see {@link Place}). */
  place(userId: string): Place {
    const buckets = this.buckets;
    if (buckets === 0) return { key: this.key(userId), entry: userId, owner: '' };
    const last = this.lastPlaced;
    if (last !== undefined && last.userId === userId) return last.place;
    const digest = sha256(userId, 'base64url');
    // The hash number: the next 30 bits of the digest (five characters), modulo the count.
    let bits = 0;
    for (let i = OWNER_CHARS; i < OWNER_CHARS + 5; i++)
      bits = bits * 64 + BASE64URL.indexOf(digest[i]!);
    const bucket = String(bits % buckets);
    const place = {
      key: `${this.keyHead}${bucket}}`,
      entry: bucket,
      owner: digest.slice(0, OWNER_CHARS),
    };
    this.lastPlaced = { userId, place };
    return place;
  }
}
