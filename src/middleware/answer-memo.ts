import type { Holding } from '../strategies/types.js';
import type { AuthUser } from '../tokens/claims.js';
import { type RecentEntry, RecentMap } from '../tokens/recent-map.js';

interface Answer extends RecentEntry {
  /** The Authorization header the answer is for (RecentEntry.text). */
  readonly text: string;
  readonly token: string;
  /** The user as first read; every hit hands out a shallow copy of it. */
  readonly user: AuthUser;
  /** The token's `exp` in epoch ms (RecentEntry.expiresAt): dropped then, whatever the leeway. */
  readonly expiresAt: number;
  /** What tells that the reader's answer still holds (Reuse.check). */
  readonly holding: Holding;
}

/**
 * Answers to the Authorization headers the middlewares of one reader have read (see memoFor),
 * for repeat requests: a hit
 * is one lookup by the exact header, the token's expiry and the reader's own check (with the
 * session cache, that the session is still vouched for; see SessionCache.holds), instead of
 * parsing the header, looking the token up in the verify cache and the session in the session
 * cache. It answers only what the reader answered synchronously before, and only while the
 * reader says that answer holds, so it never answers differently from the full path.
 */
export class AnswerMemo {
  private readonly answers: RecentMap<Answer>;

  constructor(maxEntries: number) {
    this.answers = new RecentMap(maxEntries);
  }

  /** The token and a copy of the user for exactly this header, if an answer holds at `now`. */
  get(header: string, now: number): { token: string; user: AuthUser } | undefined {
    if (this.answers.size === 0) return undefined;
    const answer = this.answers.get(header, now);
    if (answer === undefined) return undefined;
    if (!answer.holding.holds(now)) {
      this.answers.delete(header);
      return undefined;
    }
    return { token: answer.token, user: { ...answer.user } };
  }

  /** Whether to keep the answer to the header that just missed (RecentMap.admit). */
  admit(): boolean {
    return this.answers.admit();
  }

  /**
   * Keeps an answer; `user` is copied, as the request it was read for may change its own. Not
   * one past its `exp` (accepted within the leeway, it would only be dropped again).
   */
  remember(header: string, token: string, user: AuthUser, holding: Holding, now: number): void {
    const expiresAt = typeof user.exp === 'number' ? user.exp * 1000 : 0;
    if (expiresAt <= now) return;
    this.answers.set({ text: header, token, user: { ...user }, expiresAt, holding });
  }

  get size(): number {
    return this.answers.size;
  }
}

// One memo per reader and session-check setting, shared by every middleware of an instance that
// reads alike: the bound (verifyCacheSize) is per instance, however many middlewares it makes.
const memos = new WeakMap<object, { [checkSession: string]: AnswerMemo }>();

/** The memo shared by the middlewares that read with `reader` and this `checkSession`. */
export function memoFor(reader: object, checkSession: boolean, limit: number): AnswerMemo {
  let byCheck = memos.get(reader);
  if (byCheck === undefined) memos.set(reader, (byCheck = {}));
  return (byCheck[String(checkSession)] ??= new AnswerMemo(limit));
}
