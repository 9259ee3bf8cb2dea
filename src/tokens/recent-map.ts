/** An entry of a {@link RecentMap}: the whole string it answers for, and until when. */
export interface RecentEntry {
  readonly text: string;
  /** Epoch ms: from then on the entry is never served, and the lookup that finds it drops it. */
  readonly expiresAt: number;
}

/** Characters of a string's end that its map key is made from: all inside a token's signature. */
const KEY_CHARS = 8;

/**
 * The map key of a long string (a token, or the Authorization header that carries one): a 30-bit
 * FNV-1a hash of its last KEY_CHARS characters, which lie in the token's signature (at least 43
 * characters for every algorithm). A small-integer key is hashed and compared inside the Map
 * without reading any stored string, where a string key is hashed on every lookup (a fresh header
 * string has no cached hash) and compared through the stored string, one more cold read per
 * request over a working set of many thousand tokens. Two strings may share a key: the entry
 * keeps the whole string and a hit requires the exact string, so they never share an answer (a
 * forged payload under a real signature included); the later one replaces the earlier, which
 * then only misses.
 */
function lookupKey(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = Math.max(0, text.length - KEY_CHARS); i < text.length; i++)
    hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash & 0x3fffffff;
}

/** Lookups per measuring window of the hit rate. */
const WINDOW = 1024;
/** Weight of the latest window in the smoothed hit rate. */
const SMOOTHING = 0.1;
/** Below this smoothed hit rate a full map stores only a sample of its misses... */
const THRASH_BELOW = 0.5;
/** ...until the rate is back at this. */
const RECOVERED_AT = 0.75;
/** While thrashing, one miss in this many is stored. */
const ADMIT_ONE_IN = 16;

/**
 * A bounded map from long strings to answers about them, for the per-request caches (verified
 * tokens, the middlewares' answer memo). Bounded by two generations of at most half the size
 * each: new entries go to the young one, a hit in the old one moves the entry to the young one,
 * and when the young one is full it becomes the old one and the previous old one is dropped
 * whole. What goes first is what was not used during the last two generations: least recently
 * used, to within half the size. Every step is O(1): deleting the oldest entry of a single Map
 * one at a time costs more as deletions pile up (V8 skips the holes they leave from the start),
 * and a cache that misses on every request (more distinct tokens than it holds) paid that on
 * each one: 5 µs per request, more than a verification (issue 15's note).
 *
 * Admission: while the map is full and its smoothed hit rate is below THRASH_BELOW, {@link admit}
 * lets one miss in ADMIT_ONE_IN be stored, until the rate is back at RECOVERED_AT. Storing every
 * miss of a working set larger than the map (tokens cycling through, or more users than it holds)
 * evicts each entry before its token comes back: no hit, and each stored entry lives long enough
 * to be moved to V8's old generation and collected there. That cost 5-6 µs per request over
 * 20,000 tokens and a 10,000-entry cache, more than the verification the cache saves. Storing a
 * sample keeps part of the working set long enough to be hit again (about a quarter of lookups
 * in a simulation of that case, against none), and a working set that fits still reaches its full
 * hit rate.
 */
export class RecentMap<E extends RecentEntry> {
  private young = new Map<number, E>();
  private old = new Map<number, E>();
  private readonly generation: number;
  /** Lookups and hits in the current measuring window. */
  private lookups = 0;
  private hits = 0;
  /** Hit rate over recent windows (exponentially smoothed). */
  private hitRate = 1;
  private thrashing = false;
  /** Misses refused since the last one admitted while thrashing. */
  private refused = 0;

  constructor(maxEntries: number) {
    this.generation = Math.max(1, Math.ceil(maxEntries / 2));
  }

  /** The entry for exactly `text` if it has not expired at `now`, or undefined; a hit counts as a use. */
  get(text: string, now: number): E | undefined {
    if (++this.lookups === WINDOW) this.measure();
    const name = lookupKey(text);
    const young = this.young.get(name);
    const entry = young ?? this.old.get(name);
    if (entry === undefined || entry.text !== text) return undefined;
    if (now >= entry.expiresAt) {
      // The entry is exactly text's, found under this key in one generation.
      (young === undefined ? this.old : this.young).delete(name);
      return undefined;
    }
    if (young === undefined) {
      this.old.delete(name);
      this.add(name, entry);
    }
    this.hits++;
    return entry;
  }

  /**
   * Whether to store the entry of the miss just looked up: always, except while the map
   * thrashes (see the class comment). Call before building the entry, so a refused one costs
   * nothing.
   */
  admit(): boolean {
    if (!this.thrashing) return true;
    if (++this.refused < ADMIT_ONE_IN) return false;
    this.refused = 0;
    return true;
  }

  private measure(): void {
    this.hitRate += (this.hits / this.lookups - this.hitRate) * SMOOTHING;
    this.lookups = 0;
    this.hits = 0;
    if (this.thrashing) this.thrashing = this.hitRate < RECOVERED_AT;
    // Full: the young generation has filled at least once, so stored entries are being dropped.
    else this.thrashing = this.old.size > 0 && this.hitRate < THRASH_BELOW;
  }

  /** Whether exactly `text` is held, without counting as a use. */
  has(text: string): boolean {
    const name = lookupKey(text);
    return (this.young.get(name) ?? this.old.get(name))?.text === text;
  }

  set(entry: E): void {
    const name = lookupKey(entry.text);
    this.old.delete(name);
    this.add(name, entry);
  }

  /** Drops exactly `text`'s entry: another string's that shares its key stays. */
  delete(text: string): void {
    const name = lookupKey(text);
    if (this.young.get(name)?.text === text) this.young.delete(name);
    if (this.old.get(name)?.text === text) this.old.delete(name);
  }

  private add(name: number, entry: E): void {
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
