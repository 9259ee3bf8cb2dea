import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  base36,
  cleanMeta,
  compactUuid,
  coreExpiresAt,
  DEVICE_CODES,
  DEVICE_TABLES,
  expandUuid,
  isBinary,
  packCore,
  packMeta,
  packMetaByCharacter,
  binaryRecord,
  SEP,
  unpackSession,
  uuidBytes,
} from '../../../src/stores/record-codec.js';
import { deviceCode } from '../../../src/tokens/device.js';

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

/** Jtis that are no UUID: none of them gets a binary record's bytes. */
const ODD_JTIS = [
  '',
  'abcdefghijklmnopqrstuv',
  'šššššššš-bbbb-cccc-dddd-eeeeffff0000',
  '0f8fad5b-d9cb-469f-a165-70867728950',
  '0f8fad5b-d9cb-469f-a165-70867728950e0',
  '0f8fad5b-d9cb-469f-a165-70867728950g',
  '0f8fad5b d9cb 469f a165 70867728950e',
];

describe('uuidBytes', () => {
  it("gives a UUID's 16 bytes as a binary record keeps them, and none for anything else", () => {
    for (let i = 0; i < 2000; i++) {
      const uuid = randomUUID();
      const bytes = Buffer.from(uuid.replaceAll('-', ''), 'hex');
      expect(uuidBytes(uuid)).toEqual(bytes);
      expect(uuidBytes(uuid.toUpperCase())).toEqual(bytes);
      // Given compactUuid's answer, the same bytes without a second check of the digits.
      expect(uuidBytes(uuid, compactUuid(uuid))).toEqual(bytes);
      // The same 16 bytes as a text record's compact jti.
      expect(uuidBytes(uuid).toString('base64url')).toBe(compactUuid(uuid));
    }
    for (const odd of ODD_JTIS) {
      expect(uuidBytes(odd)).toHaveLength(0);
      expect(uuidBytes(odd, compactUuid(odd))).toHaveLength(0);
    }
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

describe('record version 2 (binary)', () => {
  const login = {
    jti: '0f8fad5b-d9cb-469f-a165-70867728950e',
    createdAt: 1_796_041_005_123,
    expiresAt: 1_798_633_005_000,
    ip: '203.0.113.7',
    userAgent: 'Chrome|Windows|desktop',
  };
  /** What Redis holds for a login: the record the create script stores, and the metadata chunks. */
  const stored = (s: typeof login): { core: Buffer | string; meta: string[] } =>
    binaryRecord(s) ?? {
      core: packCore({ ...s, previousJti: '', rotatedAt: 0 }),
      meta: packMeta(s),
    };
  const unpacked = (packed: { core: Buffer | string; meta: string[] }) =>
    unpackSession('sid', Buffer.from(packed.core), packed.meta.join(''));

  it('packs a browser login in 33 bytes, in the layout and codes earlier records hold', () => {
    const packed = stored(login);
    expect(packed.meta).toEqual([]);
    // Layout V2 | DEVICE, the jti, createdAt (ms), expiresAt (s), the ip, then Chrome, and
    // Windows * 8 + desktop: stored records hold these codes, so they may never change.
    expect(Buffer.from(packed.core).toString('hex')).toBe(
      '0c' +
        '0f8fad5bd9cb469fa16570867728950e' +
        '01a22c62d843' +
        '6b34f62d' +
        'cb007107' +
        '01' +
        '09',
    );
    expect(unpacked(packed)).toEqual({
      sessionId: 'sid',
      jti: login.jti,
      previousJti: '',
      rotatedAt: 0,
      createdAt: login.createdAt,
      lastUsedAt: login.createdAt,
      expiresAt: login.expiresAt,
      ip: login.ip,
      userAgent: login.userAgent,
    });
    expect(coreExpiresAt(Buffer.from(packed.core))).toBe(login.expiresAt);
  });

  it('keeps an IPv4 client of a dual-stack socket as it was written', () => {
    const packed = stored({ ...login, ip: '::ffff:10.0.0.1' });
    expect(packed.core).toHaveLength(33);
    expect(unpacked(packed)).toMatchObject({ ip: '::ffff:10.0.0.1', userAgent: login.userAgent });
  });

  it('puts what it has no codes for in metadata chunks, and gives it back exactly', () => {
    for (const [ip, userAgent] of [
      ['2001:db8::7', login.userAgent],
      ['01.2.3.4', login.userAgent],
      ['256.1.1.1', login.userAgent],
      ['1.2.3', login.userAgent],
      ['1.2.3.4.5', login.userAgent],
      ['1.2.3.4 ', login.userAgent],
      ['::FFFF:1.2.3.4', login.userAgent],
      ['', login.userAgent],
      [login.ip, 'Netscape Navigator|Linux|desktop'],
      [login.ip, 'curl||'.replace('curl', 'an agent no table names')],
      [login.ip, 'Chrome|Windows'],
      [login.ip, ''],
      ['', ''],
    ] as const) {
      const packed = stored({ ...login, ip, userAgent });
      expect(packed.core, `${ip} ${userAgent}`).toHaveLength(27);
      expect(packed.meta).toEqual(packMeta({ ip, userAgent }));
      expect(unpacked(packed)).toMatchObject({ jti: login.jti, ip, userAgent });
    }
  });

  it('has a code for every browser and OS name the user agent parser has today', async () => {
    // bowser's own name lists (not in its types): a name added upstream shows up here.
    const lists = 'bowser/src/constants.js';
    const constants = (await import(lists)) as {
      BROWSER_MAP: Record<string, string>;
      OS_MAP: Record<string, string>;
    };
    // …and the names its browser parsers write out themselves.
    const bowser = dirname(createRequire(import.meta.url).resolve('bowser/package.json'));
    const parsers = readFileSync(join(bowser, 'src', 'parser-browsers.js'), 'utf8');
    const named = [...parsers.matchAll(/name: '([^']+)'/g)].map((match) => match[1]!);
    expect(named.length).toBeGreaterThan(50);
    for (const browser of new Set([...Object.values(constants.BROWSER_MAP), ...named]))
      for (const os of ['', ...Object.values(constants.OS_MAP)])
        for (const type of ['', 'desktop', 'mobile', 'tablet', 'tv', 'bot']) {
          const userAgent = `${browser}|${os}|${type}`;
          const packed = stored({ ...login, userAgent });
          // Coded within the record (the codes fit their bits), not kept in metadata fields.
          expect(packed.meta, userAgent).toEqual([]);
          expect(unpacked(packed), userAgent).toMatchObject({ userAgent });
        }
    for (const agent of ['curl/8.4.0', 'Wget/1.21', 'PostmanRuntime/7.36.0', 'okhttp/4.12.0'])
      expect(stored({ ...login, userAgent: deviceCode(agent) }).core).toHaveLength(33);
  });

  it('keeps expiresAt to the second, rounded down, and createdAt to the ms', () => {
    for (const expiresAt of [login.expiresAt, login.expiresAt + 1, login.expiresAt + 999]) {
      const packed = stored({ ...login, expiresAt });
      expect(unpacked(packed)).toMatchObject({
        createdAt: login.createdAt,
        expiresAt: login.expiresAt,
      });
      expect(coreExpiresAt(Buffer.from(packed.core))).toBe(login.expiresAt);
    }
  });

  it('has room in the device bytes for every code the tables hold', () => {
    expect(DEVICE_TABLES.browsers).toBeLessThanOrEqual(DEVICE_CODES.browsers);
    expect(DEVICE_TABLES.systems).toBeLessThanOrEqual(DEVICE_CODES.systems);
    expect(DEVICE_TABLES.types).toBeLessThanOrEqual(DEVICE_CODES.types);
  });

  it('writes version 1 for a jti that is no UUID, and reads either version', () => {
    const packed = stored({ ...login, jti: 'a-custom-jti' });
    expect(typeof packed.core).toBe('string');
    expect(packed.core).toBe(
      packCore({ ...login, jti: 'a-custom-jti', previousJti: '', rotatedAt: 0 }),
    );
    expect(isBinary(Buffer.from(packed.core))).toBe(false);
    expect(unpacked(packed)).toMatchObject({ jti: 'a-custom-jti', ip: login.ip });
    expect(coreExpiresAt(Buffer.from(packed.core))).toBe(login.expiresAt);
    // A record too short, or whose flags name parts it does not have, is nobody's.
    const core = Buffer.from(stored(login).core);
    expect(unpackSession('sid', core.subarray(0, 32), '')).toBeUndefined();
    expect(unpackSession('sid', Buffer.concat([Buffer.from([0x0d]), core.subarray(1)]), '')).toBe(
      undefined,
    );
    expect(coreExpiresAt(core.subarray(0, 20))).toBe(0);
    // The first, unreleased layout of version 2 (0x10 to 0x17) is nobody's either.
    const first = Buffer.concat([Buffer.from([0x14]), core.subarray(1)]);
    expect(unpackSession('sid', first, '')).toBeUndefined();
    expect(coreExpiresAt(first)).toBe(0);
  });
});
