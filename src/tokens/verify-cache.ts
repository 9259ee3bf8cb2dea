import type { RingKey } from '../keys/key-ring.js';

interface Entry<P> {
  /** The whole token: the map is keyed by its end only (see {@link lookupKey}). */
  readonly token: string;
  readonly payload: P;
  /** The token's `exp` in epoch ms: the entry is dropped then, whatever the leeway. */
  readonly expiresAt: number;
  /** The key that verified the token, looked up again on each hit (see `get`). */
  readonly key: RingKey;
  readonly kid: unknown;
  readonly alg: unknown;
  /** The cache's insertion counter when this entry was last put at the back. */
  tick: number;
}

/**
 * The map key of a token: its last 32 characters, which lie in the signature (at least 43
 * characters for every algorithm) and are as unique as 192 random bits. Hashing a 300-character
 * token on every request costs more than the rest of a cache hit; the entry keeps the whole token,
 * and a hit requires the exact token, so two tokens sharing an end (a forged payload under a real
 * signature) never share an answer.
 */
const lookupKey = (token: string): string => token.slice(-32);

/**
 * Access tokens already verified, keyed by the exact token string: a hit skips the header parse
 * and the signature and claims checks, which are most of the cost of an authenticated request.
 * Bounded (least recently used entries go first, to within half the size) and never serves a
 * token past its `exp`.
 * Only tokens that passed every check are stored; session liveness is never cached.
 */
export class VerifyCache<P extends object> {
  // A Map iterates in insertion order, so re-inserting on a hit keeps the oldest entry first.
  private readonly entries = new Map<string, Entry<P>>();
  private tick = 0;
  private readonly bumpAfter: number;

  constructor(private readonly maxEntries: number) {
    // A hit moves its entry to the back only when it sits in the older half: hot tokens then cost
    // one lookup, not a delete and a re-insert, and eviction still takes the least recently used.
    this.bumpAfter = maxEntries / 2;
  }

  /**
   * The cached payload, as a shallow copy so that a request may change its own `ctx.state.user`
   * without another request seeing it. `findKey` re-checks that the verifying key is still in the
   * key ring, so a key removed from the ring stops its tokens at once.
   */
  get(
    token: string,
    now: number,
    findKey: (kid: unknown, alg: unknown) => RingKey | undefined,
  ): P | undefined {
    const key = lookupKey(token);
    const entry = this.entries.get(key);
    if (entry === undefined || entry.token !== token) return undefined;
    if (now >= entry.expiresAt || findKey(entry.kid, entry.alg) !== entry.key) {
      this.entries.delete(key);
      return undefined;
    }
    if (this.tick - entry.tick > this.bumpAfter) {
      this.entries.delete(key);
      entry.tick = ++this.tick;
      this.entries.set(key, entry);
    }
    return { ...entry.payload };
  }

  set(token: string, payload: P, exp: number, key: RingKey, kid: unknown, alg: unknown): void {
    if (this.maxEntries === 0) return;
    if (this.entries.size >= this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(lookupKey(token), {
      token,
      payload: deepFreeze(payload),
      expiresAt: exp * 1000,
      key,
      kid,
      alg,
      tick: ++this.tick,
    });
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Nested claim objects are shared by every hit, so they are frozen rather than copied per request. */
function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object' && !Object.isFrozen(inner))
      deepFreeze(inner as object);
  }
  return Object.freeze(value);
}
