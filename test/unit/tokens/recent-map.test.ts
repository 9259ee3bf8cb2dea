import { describe, expect, it } from 'vitest';
import { type RecentEntry, RecentMap } from '../../../src/tokens/recent-map.js';

interface Entry extends RecentEntry {
  answer: string;
}

const FAR = Date.now() + 3_600_000;
const entry = (text: string, answer: string, expiresAt = FAR): Entry => ({
  text,
  answer,
  expiresAt,
});

// Two strings with the same last characters share a map key (it is made from the end alone):
// a forged payload under a real signature is such a pair.
const SIGNATURE = 'Xq3_9bTz-4kLmN0pQrStUvWx';
const real = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.${SIGNATURE}`;
const forged = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.${SIGNATURE}`;

describe('RecentMap: strings that share a map key', () => {
  it('answers only the exact string, never the other one', () => {
    const map = new RecentMap<Entry>(10);
    map.set(entry(real, 'user 1'));
    expect(map.get(real, Date.now())?.answer).toBe('user 1');
    expect(map.get(forged, Date.now())).toBeUndefined();
    expect(map.has(forged)).toBe(false);
    // The miss did not disturb the real entry.
    expect(map.get(real, Date.now())?.answer).toBe('user 1');
  });

  it('keeps the later of the two: the earlier one only misses from then on', () => {
    const map = new RecentMap<Entry>(10);
    map.set(entry(real, 'user 1'));
    map.set(entry(forged, 'admin'));
    expect(map.size).toBe(1);
    expect(map.get(real, Date.now())).toBeUndefined();
    expect(map.get(forged, Date.now())?.answer).toBe('admin');
  });

  it('delete() of one string leaves the other one’s entry, in either generation', () => {
    const map = new RecentMap<Entry>(4);
    map.set(entry(real, 'user 1'));
    map.delete(forged);
    expect(map.get(real, Date.now())?.answer).toBe('user 1');
    // Two more entries fill the young generation (half of 4): the real one is now old.
    map.set(entry('a'.repeat(40), 'a'));
    map.set(entry('b'.repeat(40), 'b'));
    map.delete(forged);
    expect(map.has(real)).toBe(true);
    map.delete(real);
    expect(map.has(real)).toBe(false);
  });

  it('an expired entry found by its own string is dropped; one found by the other string is not', () => {
    const map = new RecentMap<Entry>(10);
    const now = Date.now();
    map.set(entry(real, 'user 1', now + 10));
    expect(map.get(forged, now + 20)).toBeUndefined();
    expect(map.size).toBe(1);
    expect(map.get(real, now + 20)).toBeUndefined();
    expect(map.size).toBe(0);
  });

  it('holds many distinct tokens apart (keys from 8 characters of their signatures)', () => {
    const map = new RecentMap<Entry>(40_000);
    const texts = Array.from(
      { length: 20_000 },
      (_, i) => `h.p${i}.${Buffer.from(`sig-${i}-${i * 7919}`).toString('base64url')}`,
    );
    for (const text of texts) map.set(entry(text, text));
    let hits = 0;
    for (const text of texts) if (map.get(text, Date.now())?.answer === text) hits++;
    // 30-bit keys: a few collisions among 20,000 would cost a few misses, never a wrong answer.
    expect(hits).toBeGreaterThanOrEqual(19_990);
    expect(map.size).toBe(hits);
  });
});

describe('RecentMap: admission while it thrashes', () => {
  const now = Date.now();
  const texts = (n: number, tag: string) =>
    Array.from(
      { length: n },
      (_, i) => `${tag}.${i}.${Buffer.from(`${tag}:${i}`).toString('hex')}`,
    );

  /** One pass over `list`: a lookup each, and each miss stored when admitted. */
  function pass(map: RecentMap<Entry>, list: string[]) {
    const counts = { hits: 0, misses: 0, admitted: 0 };
    for (const text of list) {
      const found = map.get(text, now);
      if (found !== undefined) {
        expect(found.answer).toBe(text);
        counts.hits++;
      } else {
        counts.misses++;
        if (map.admit()) {
          counts.admitted++;
          map.set(entry(text, text));
        }
      }
    }
    return counts;
  }

  it('stores one miss in 16 when its working set is larger than it, and is then hit', () => {
    const map = new RecentMap<Entry>(100);
    const cycling = texts(300, 'cycle');
    // Storing every miss: each entry is dropped before its text comes back, so nothing hits.
    expect(pass(map, cycling)).toEqual({ hits: 0, misses: 300, admitted: 300 });
    for (let i = 0; i < 40; i++) pass(map, cycling);
    const later = { hits: 0, misses: 0, admitted: 0 };
    for (let i = 0; i < 20; i++) {
      const counts = pass(map, cycling);
      later.hits += counts.hits;
      later.misses += counts.misses;
      later.admitted += counts.admitted;
    }
    expect(later.admitted / later.misses).toBeCloseTo(1 / 16, 2);
    // A sample stays long enough to be found again.
    expect(later.hits / (20 * 300)).toBeGreaterThan(0.1);
  });

  it('stores every miss again once the working set fits', () => {
    const map = new RecentMap<Entry>(100);
    const cycling = texts(300, 'cycle');
    for (let i = 0; i < 40; i++) pass(map, cycling);
    expect(pass(map, cycling).admitted).toBeLessThan(40);
    const fitting = texts(40, 'fit');
    for (let i = 0; i < 400; i++) pass(map, fitting);
    expect(pass(map, fitting)).toEqual({ hits: 40, misses: 0, admitted: 0 });
    expect([map.admit(), map.admit(), map.admit()]).toEqual([true, true, true]);
  });

  it('a map that has not filled up stores every miss, however few hits it has', () => {
    const map = new RecentMap<Entry>(10_000);
    const distinct = texts(4000, 'once');
    expect(pass(map, distinct)).toEqual({ hits: 0, misses: 4000, admitted: 4000 });
    expect(pass(map, texts(1000, 'more')).admitted).toBe(1000);
  });
});
