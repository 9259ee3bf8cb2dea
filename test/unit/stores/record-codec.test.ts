import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  base36,
  cleanMeta,
  compactUuid,
  expandUuid,
  packMeta,
  packMetaByCharacter,
  SEP,
} from '../../../src/stores/record-codec.js';

/*
 * cleanMeta and packMeta answer printable ASCII without their per-character work; the references
 * are the per-character rules (cleanMeta's written out here, packMeta's the codec's own slow
 * path), and both must agree on any input.
 */

function referenceClean(value: string, maxBytes: number, allowSeparator: boolean): string {
  let out = '';
  let bytes = 0;
  const chars = [...value];
  for (let i = 0; i < chars.length; i++) {
    let char = chars[i]!;
    const code = char.codePointAt(0)!;
    if (code <= 0x1f || code === 0x7f) continue;
    if (!allowSeparator && char === SEP) continue;
    // A lone surrogate (no UTF-8 form) becomes U+FFFD.
    if (char.length === 1 && code >= 0xd800 && code <= 0xdfff) char = '\ufffd';
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}

/** What packMeta answered before its ASCII path: the per-character rule. */
const referencePack = (ip: string, userAgent: string): string[] =>
  ip === '' && userAgent === '' ? [] : packMetaByCharacter(`${ip}${SEP}${userAgent}`);

const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

describe('compactUuid', () => {
  it('compacts a UUID in either case to 22 characters, and leaves anything else as it is', () => {
    const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
    expect(compactUuid(uuid)).toBe(
      Buffer.from(uuid.replaceAll('-', ''), 'hex').toString('base64url'),
    );
    expect(compactUuid(uuid.toUpperCase())).toBe(compactUuid(uuid));
    // The one-pass encoder against Buffer's hex and base64url, on every bit of random UUIDs.
    for (let i = 0; i < 2000; i++) {
      const random = randomUUID();
      const reference = Buffer.from(random.replaceAll('-', ''), 'hex').toString('base64url');
      expect(compactUuid(random)).toBe(reference);
      expect(compactUuid(random.toUpperCase())).toBe(reference);
      expect(expandUuid(reference)).toBe(random);
    }
    expect(expandUuid(compactUuid(uuid))).toBe(uuid);
    // Characters whose low byte is a hex digit ("š" is U+0161, "İ" U+0130) are not hex digits.
    for (const odd of [
      'šššššššš-bbbb-cccc-dddd-eeeeffff0000',
      'İaaaaaaa-bbbb-cccc-dddd-eeeeffff0000',
      '0f8fad5b-d9cb-469f-a165-70867728950',
      '0f8fad5b-d9cb-469f-a165-70867728950e0',
      '0f8fad5bxd9cb-469f-a165-70867728950e',
      '0f8fad5b-d9cb-469f-a165-70867728950g',
    ])
      expect(compactUuid(odd)).toBe(odd);
  });
});

describe('base36', () => {
  it('writes the digits of toString(36) for every whole number up to 2 ** 53', () => {
    const edges = [0, 1, 35, 36, 0x3fffffff, 0x40000000, 60_466_175, 60_466_176, 60_466_177];
    for (let digits = 1; digits <= 11; digits++) edges.push(36 ** digits - 1, 36 ** digits);
    edges.push(2 ** 53 - 1, 2 ** 53, Date.now(), Date.UTC(2100, 0, 1));
    for (let i = 0; i < 20_000; i++) edges.push(Math.floor(Math.random() * 2 ** 53));
    for (const n of edges) expect(base36(n)).toBe(n.toString(36));
    // Not a whole number up to 2 ** 53: V8's own digits, not the two halves.
    for (const n of [
      28_115 * 60_466_176 + 1234.5,
      2 ** 53 + 2,
      2 ** 60,
      -5,
      -(2 ** 40),
      NaN,
      Infinity,
    ])
      expect(base36(n)).toBe(n.toString(36));
  });
});

describe('record codec metadata', () => {
  it('keeps printable ASCII as it is, cut to the byte limit', () => {
    expect(cleanMeta(CHROME, 256, true)).toBe(CHROME);
    expect(cleanMeta(CHROME, 20, true)).toBe(CHROME.slice(0, 20));
    expect(cleanMeta('203.0.113.7', 64, false)).toBe('203.0.113.7');
    expect(cleanMeta('a|b', 64, false)).toBe('ab');
    expect(cleanMeta('a|b', 64, true)).toBe('a|b');
    expect(cleanMeta(42, 64, true)).toBe('');
    expect(packMeta({ ip: '', userAgent: '' })).toEqual([]);
    expect(packMeta({ ip: '203.0.113.7', userAgent: CHROME })).toEqual(
      referencePack('203.0.113.7', CHROME),
    );
  });

  it('answers as the character-by-character rules for any input', () => {
    const alphabet = [
      ...'abcXYZ019 ./;()|-_',
      '\u0000',
      '\t',
      '\u001f',
      '\u007f',
      '\u0080',
      '\u00e9',
      '\u20ac',
      '\ud83d\ude00',
      '\ud800',
      '\udc00',
    ];
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const text = (length: number) => {
      let out = '';
      for (let i = 0; i < length; i++) out += alphabet[random(alphabet.length)]!;
      return out;
    };
    for (let i = 0; i < 5000; i++) {
      // Half of them printable ASCII only, the fast path; the others anything.
      const value =
        i % 2 === 0 ? text(random(300)).replace(/[^\x20-\x7e]/g, 'q') : text(random(300));
      const maxBytes = [16, 64, 256][random(3)]!;
      const allow = random(2) === 0;
      expect(cleanMeta(value, maxBytes, allow), JSON.stringify(value)).toBe(
        referenceClean(value, maxBytes, allow),
      );
      const ip = cleanMeta(text(random(20)), 64, false);
      const userAgent = cleanMeta(value, 256, true);
      expect(packMeta({ ip, userAgent })).toEqual(referencePack(ip, userAgent));
    }
  });
});
