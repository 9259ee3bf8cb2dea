import type { RingKey } from '../keys/key-ring.js';
import { type RecentEntry, RecentMap } from './recent-map.js';

interface Entry<P> extends RecentEntry {
  /** The whole token (RecentEntry.text). */
  readonly text: string;
  readonly payload: P;
  /** The token's `exp` in epoch ms (RecentEntry.expiresAt): dropped then, whatever the leeway. */
  readonly expiresAt: number;
  /** The key that verified the token, looked up again on each hit (see `get`). */
  readonly key: RingKey;
  readonly kid: unknown;
  readonly alg: unknown;
}

/**
 * Access tokens already verified, keyed by the exact token string: a hit skips the header parse
 * and the signature and claims checks, which are most of the cost of an authenticated request.
 * Never serves a token past its `exp`. Only tokens that passed every check are stored; session
 * liveness is never cached. Bounded as a {@link RecentMap}.
 */
export class VerifyCache<P extends object> {
  private readonly entries: RecentMap<Entry<P>>;

  constructor(maxEntries: number) {
    this.entries = new RecentMap(maxEntries);
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
    const entry = this.entries.get(token, now);
    if (entry === undefined) return undefined;
    if (findKey(entry.kid, entry.alg) !== entry.key) {
      this.entries.delete(token);
      return undefined;
    }
    return { ...entry.payload };
  }

  /** Stores a token that missed and passed every check, unless the map refuses it (RecentMap.admit). */
  set(token: string, payload: P, exp: number, key: RingKey, kid: unknown, alg: unknown): void {
    if (!this.entries.admit()) return;
    this.entries.set({
      text: token,
      payload: freezeNested(payload),
      expiresAt: exp * 1000,
      key,
      kid,
      alg,
    });
  }

  /** Whether the token is held (expired or not), without counting as a use. */
  has(token: string): boolean {
    return this.entries.has(token);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
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
