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
 * Never serves a token past its `exp`. Only tokens that passed every check are stored; session
 * liveness is never cached.
 *
 * Bounded by two generations of at most half the size each: new entries go to the young one, a
 * hit in the old one moves the entry to the young one, and when the young one is full it becomes
 * the old one and the previous old one is dropped whole. What goes first is what was not used
 * during the last two generations: least recently used, to within half the size. Every step is
 * O(1): deleting the oldest entry of a single Map one at a time costs more as deletions pile up
 * (V8 skips the holes they leave from the start), and a cache that misses on every request
 * (more distinct tokens than it holds) paid that on each one: 5 µs per request, more than a
 * verification (issue 15's note).
 */
export class VerifyCache<P extends object> {
  private young = new Map<string, Entry<P>>();
  private old = new Map<string, Entry<P>>();
  private readonly generation: number;

  constructor(maxEntries: number) {
    this.generation = Math.max(1, Math.ceil(maxEntries / 2));
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
    const name = lookupKey(token);
    let entry = this.young.get(name);
    const young = entry !== undefined;
    if (!young) entry = this.old.get(name);
    if (entry === undefined || entry.token !== token) return undefined;
    if (now >= entry.expiresAt || findKey(entry.kid, entry.alg) !== entry.key) {
      this.young.delete(name);
      this.old.delete(name);
      return undefined;
    }
    if (!young) {
      this.old.delete(name);
      this.add(name, entry);
    }
    return { ...entry.payload };
  }

  set(token: string, payload: P, exp: number, key: RingKey, kid: unknown, alg: unknown): void {
    const name = lookupKey(token);
    this.old.delete(name);
    this.add(name, {
      token,
      payload: freezeNested(payload),
      expiresAt: exp * 1000,
      key,
      kid,
      alg,
    });
  }

  private add(name: string, entry: Entry<P>): void {
    this.young.set(name, entry);
    if (this.young.size >= this.generation) {
      this.old = this.young;
      this.young = new Map();
    }
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}

/**
 * Nested claim objects are shared by every hit, so they are frozen rather than copied per request.
 * The top-level object is never handed out (every hit, and the miss that stored it, answers a
 * shallow copy), so it stays unfrozen: copying a frozen object costs several times more.
 */
function freezeNested<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object' && !Object.isFrozen(inner))
      deepFreeze(inner as object);
  }
  return value;
}

function deepFreeze<T extends object>(value: T): T {
  return Object.freeze(freezeNested(value));
}
