import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthConfigError, createAuth, redisStore } from '../../src/index.js';
import { binaryRecord, packCore, packMeta } from '../../src/stores/record-codec.js';
import type { SessionStore } from '../../src/stores/session-store.js';
import { redisClient, type TestRedis, uniquePrefix } from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';

/*
 * By default the Redis store writes version 2 records (binary, one field per family) and still
 * reads, checks, lists, rotates and caps the version 1 records (text, metadata in fields of its
 * own) that earlier versions and `recordFormat: 'text'` write, in the same hash as new ones:
 * upgrading logs nobody out.
 */

let client: TestRedis;
let store: SessionStore;
afterEach(async () => {
  await store.close();
  client.disconnect();
});

const META = { ip: '203.0.113.7', userAgent: 'Firefox|Linux|desktop' };

function setUp(recordFormat?: 'text') {
  client = redisClient();
  const keyPrefix = uniquePrefix();
  // Binary records are the default; text ones opt-in.
  store = redisStore(client, { keyPrefix, ...(recordFormat ? { recordFormat } : {}) });
  return (user: string) => `${keyPrefix}{u:${user}}`;
}

/** A family as an earlier version recorded it: the text core record, then its metadata chunks. */
async function recordVersion1(
  key: string,
  sessionId: string,
  jti: string,
  createdAt: number,
  expiresAt: number,
): Promise<void> {
  const core = packCore({ jti, previousJti: '', rotatedAt: 0, createdAt, expiresAt });
  const meta = packMeta(META).flatMap((chunk, i) => [`${sessionId}:${i}`, chunk]);
  await client.hset(key, sessionId, core, ...meta);
  await client.pexpireat(key, expiresAt);
}

const firstByte = async (key: string, sessionId: string) =>
  (await client.hgetBuffer(key, sessionId))?.[0];

describe('Redis record versions', () => {
  it('reads, checks, lists, rotates and caps families an earlier version recorded', async () => {
    const keyOf = setUp();
    const key = keyOf('old');
    const now = Date.now();
    const [a, b, c, d] = ['AAAAAAAAAAAAAAAA', 'BBBBBBBBBBBBBBBB', 'CCCCCCCCCCCCCCCC', 'DDDD'];
    const [jtiA, jtiB] = [randomUUID(), randomUUID()];
    await recordVersion1(key, a!, jtiA, now - 2000, now + 600_000);
    await recordVersion1(key, b!, jtiB, now - 1000, now + 600_000);

    expect(await store.isLive('old', a!, now)).toBe(true);
    expect(await store.get('old', a!, now)).toMatchObject({
      jti: jtiA,
      createdAt: now - 2000,
      ...META,
    });
    expect((await store.list('old', now)).map((s) => [s.sessionId, s.jti, s.ip])).toEqual([
      [a, jtiA, META.ip],
      [b, jtiB, META.ip],
    ]);

    // A rotation keeps the family's version; within the grace window the old jti is superseded.
    const nextA = randomUUID();
    const rotation = { sessionId: a!, now, expiresAt: now + 60_000, graceMs: 10_000 };
    expect(await store.rotate('old', { ...rotation, oldJti: jtiA, newJti: nextA })).toBe('rotated');
    expect(await firstByte(key, a!)).toBeGreaterThanOrEqual(0x20);
    // Stamped when it ran, by Redis's clock (a text record keeps the ms): not before its now.
    const rotated = await store.get('old', a!, now);
    expect(rotated).toMatchObject({ jti: nextA, ...META });
    expect(rotated!.rotatedAt).toBeGreaterThanOrEqual(now);
    expect(rotated!.rotatedAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(await store.rotate('old', { ...rotation, oldJti: jtiA, newJti: randomUUID() })).toBe(
      'superseded',
    );
    // Reuse ends the family, its metadata too.
    expect(
      await store.rotate('old', {
        ...rotation,
        sessionId: b!,
        oldJti: randomUUID(),
        newJti: randomUUID(),
      }),
    ).toBe('reused');
    expect(await store.isLive('old', b!, now)).toBe(false);
    expect(await client.hexists(key, `${b}:0`)).toBe(0);

    // A new login beside them is version 2, and the cap weighs both versions by expiry.
    await store.create(
      'old',
      { sessionId: c!, jti: randomUUID(), now, expiresAt: now + 120_000, ...META },
      0,
    );
    expect(await firstByte(key, c!)).toBeLessThan(0x20);
    await store.create(
      'old',
      { sessionId: d!, jti: randomUUID(), now, expiresAt: now + 180_000, ...META },
      2,
    );
    expect((await store.list('old', now)).map((s) => [s.sessionId, s.ip, s.userAgent])).toEqual([
      [c, META.ip, META.userAgent],
      [d, META.ip, META.userAgent],
    ]);
    expect(await client.hexists(key, `${a}:0`)).toBe(0);
  });

  it('stores the binary record as the layout says: flags, jti, creation, expiry, then the device when it has codes', async () => {
    const keyOf = setUp();
    const now = Date.now();
    for (const [sessionId, ip] of [
      ['IIIIIIIIIIIIIIII', META.ip],
      ['JJJJJJJJJJJJJJJJ', '::ffff:198.51.100.255'],
      ['KKKKKKKKKKKKKKKK', '2001:db8::7'],
    ] as const) {
      const session = {
        sessionId,
        jti: randomUUID(),
        now,
        expiresAt: now + 60_000,
        ip,
        userAgent: META.userAgent,
      };
      await store.create('bytes', session, 0);
      const stored = (await client.hgetBuffer(keyOf('bytes'), sessionId))!;
      expect(stored).toEqual(binaryRecord({ ...session, createdAt: now })!.core);
      // The layout, written out here rather than by the codec: version 2 (0x08), with the device
      // flag (0x04) when the address has codes; the jti's 16 bytes; createdAt in 6 bytes of ms;
      // expiresAt in 4 bytes of whole seconds; the device's 6 bytes.
      const device = !ip.includes('::7');
      const head = Buffer.alloc(27);
      head[0] = device ? 0x0c : 0x08;
      Buffer.from(session.jti.replaceAll('-', ''), 'hex').copy(head, 1);
      head.writeUIntBE(now, 17, 6);
      head.writeUInt32BE(Math.floor((now + 60_000) / 1000), 23);
      expect(stored.subarray(0, 27)).toEqual(head);
      expect(stored).toHaveLength(device ? 33 : 27);
      expect(await store.get('bytes', sessionId, now)).toMatchObject({
        jti: session.jti,
        ip,
        userAgent: META.userAgent,
      });
    }
    // No codes for an IPv6 address: its metadata is in a field of its own.
    expect(await client.hexists(keyOf('bytes'), 'KKKKKKKKKKKKKKKK:0')).toBe(1);
    expect(await client.hexists(keyOf('bytes'), 'IIIIIIIIIIIIIIII:0')).toBe(0);
  });

  it('rotates a binary family in place: its ip, device label and creation time stay', async () => {
    const keyOf = setUp();
    const key = keyOf('new');
    const now = Date.now();
    const [jti0, jti1, jti2] = [randomUUID(), randomUUID(), randomUUID()];
    const sessionId = 'HHHHHHHHHHHHHHHH';
    await store.create(
      'new',
      { sessionId, jti: jti0, now: now - 1000, expiresAt: now + 60_000, ...META },
      0,
    );
    const length = async () => (await client.hgetBuffer(key, sessionId))?.length;
    expect(await length()).toBe(33);
    const rotation = { sessionId, now, expiresAt: now + 120_000 };
    expect(
      await store.rotate('new', { ...rotation, oldJti: jti0, newJti: jti1, graceMs: 10_000 }),
    ).toBe('rotated');
    const ran = Date.now();
    // The rotation time, and 8 bytes of the replaced jti for the grace window.
    expect(await length()).toBe(45);
    // createdAt to the ms; the expiry to the second, rounded down, the rotation rounded up: when
    // it ran, by Redis's clock (with a grace window), so a second boundary may lie in between.
    const { rotatedAt } = (await store.get('new', sessionId, now))!;
    expect([Math.ceil(now / 1000) * 1000, Math.ceil(ran / 1000) * 1000]).toContain(rotatedAt);
    expect(await store.get('new', sessionId, now)).toEqual({
      sessionId,
      jti: jti1,
      previousJti: expect.any(String),
      createdAt: now - 1000,
      rotatedAt,
      lastUsedAt: rotatedAt,
      expiresAt: Math.floor((now + 120_000) / 1000) * 1000,
      ...META,
    });
    expect(
      await store.rotate('new', {
        ...rotation,
        oldJti: jti0,
        newJti: randomUUID(),
        graceMs: 10_000,
      }),
    ).toBe('superseded');
    expect(await store.rotate('new', { ...rotation, oldJti: jti1, newJti: jti2, graceMs: 0 })).toBe(
      'rotated',
    );
    // A rotated browser session without the grace part: 37 bytes, within the 64-byte allocation.
    expect(await length()).toBe(37);
    expect((await store.list('new', now)).map((s) => [s.jti, s.ip, s.userAgent])).toEqual([
      [jti2, META.ip, META.userAgent],
    ]);
    // Without a grace period the replaced jti is reuse, and ends the family.
    expect(
      await store.rotate('new', { ...rotation, oldJti: jti1, newJti: randomUUID(), graceMs: 0 }),
    ).toBe('reused');
    expect(await store.isLive('new', sessionId, now)).toBe(false);
  });

  it.each(['binary', 'text'] as const)(
    'keeps no previous jti in a binary record for a successor rotation, and both kinds still answer a concurrent one (%s)',
    async (format) => {
      const keyOf = setUp(format === 'text' ? 'text' : undefined);
      const key = keyOf('successor');
      const now = Date.now();
      const sessionId = 'SSSSSSSSSSSSSSSS';
      const [jti0, jti1, jti2] = [randomUUID(), randomUUID(), randomUUID()];
      await store.create(
        'successor',
        { sessionId, jti: jti0, now: now - 1000, expiresAt: now + 60_000, ...META },
        0,
      );
      const rotation = { sessionId, now, expiresAt: now + 120_000, graceMs: 10_000 };
      const rotate = (oldJti: string, newJti: string, successor: boolean) =>
        store.rotate('successor', { ...rotation, oldJti, newJti, successor });
      expect(await rotate(jti0, jti1, true)).toBe('rotated');
      const record = (await client.hgetBuffer(key, sessionId))!;
      if (format === 'binary') {
        // The rotation time and no grace part: 37 bytes, the 64-byte allocation, as without one.
        expect(record.length).toBe(37);
        expect((await store.get('successor', sessionId, now))?.previousJti).toBe('');
      } else {
        // A text record keeps it anyway: earlier versions running beside this one look for it.
        expect(record.toString().split('|')[1]).toHaveLength(14);
      }
      expect(await rotate(jti0, jti1, true)).toBe('superseded');
      // A family an earlier version rotated keeps its previous jti: that still recognises one.
      expect(await rotate(jti1, jti2, false)).toBe('rotated');
      expect(await rotate(jti1, randomUUID(), true)).toBe('superseded');
      // Another new jti than the live one: a binary record has nothing else to match, reuse; a
      // text one still has the replaced jti.
      expect(await rotate(jti2, randomUUID(), true)).toBe('rotated');
      expect(await rotate(jti2, randomUUID(), true)).toBe(
        format === 'binary' ? 'reused' : 'superseded',
      );
      expect(await store.isLive('successor', sessionId, now)).toBe(format === 'text');
    },
  );

  it('treats a record in the first, unreleased binary layout as gone: never live, never rotated', async () => {
    const keyOf = setUp();
    const key = keyOf('first');
    const now = Date.now();
    const jti = randomUUID();
    // Layout 0x14 (V2 | DEVICE as first laid out): the jti, createdAt and expiresAt in 48-bit ms,
    // the IPv4 address and three one-byte codes.
    const old = Buffer.alloc(36);
    old[0] = 0x14;
    Buffer.from(jti.replaceAll('-', ''), 'hex').copy(old, 1);
    old.writeUIntBE(now, 17, 6);
    old.writeUIntBE(now + 600_000, 23, 6);
    old.writeUInt32BE(0xcb007107, 29);
    old.writeUIntBE(0x010101, 33, 3);
    await client.hset(key, 'LLLLLLLLLLLLLLLL', old);
    await client.pexpireat(key, now + 600_000);
    expect(await store.isLive('first', 'LLLLLLLLLLLLLLLL', now)).toBe(false);
    expect(await store.get('first', 'LLLLLLLLLLLLLLLL', now)).toBeUndefined();
    expect(await store.list('first', now)).toEqual([]);
    const rotation = { sessionId: 'LLLLLLLLLLLLLLLL', now, expiresAt: now + 60_000, graceMs: 0 };
    expect(await store.rotate('first', { ...rotation, oldJti: jti, newJti: randomUUID() })).toBe(
      'missing',
    );
    // The rotation found it expired, and dropped it.
    expect(await client.hexists(key, 'LLLLLLLLLLLLLLLL')).toBe(0);
  });

  it('keeps a family whose jti is no UUID in version 1, and rotates it', async () => {
    const keyOf = setUp();
    const now = Date.now();
    const session = { sessionId: 'EEEEEEEEEEEEEEEE', now, expiresAt: now + 60_000, ...META };
    await store.create('custom', { ...session, jti: 'custom-1' }, 0);
    expect((await client.hget(keyOf('custom'), session.sessionId))?.startsWith('custom-1|')).toBe(
      true,
    );
    const rotation = { sessionId: session.sessionId, now, expiresAt: now + 60_000, graceMs: 0 };
    expect(
      await store.rotate('custom', { ...rotation, oldJti: 'custom-1', newJti: 'custom-2' }),
    ).toBe('rotated');
    expect(await store.get('custom', session.sessionId, now)).toMatchObject({
      jti: 'custom-2',
      ...META,
    });
  });

  it('refuses to give a UUID family a jti of another form, and keeps it as it was', async () => {
    setUp();
    const now = Date.now();
    const jti = randomUUID();
    const session = { sessionId: 'FFFFFFFFFFFFFFFF', now, expiresAt: now + 60_000, ...META };
    await store.create('uuid', { ...session, jti }, 0);
    const rotation = { sessionId: session.sessionId, now, expiresAt: now + 60_000, graceMs: 0 };
    await expect(
      store.rotate('uuid', { ...rotation, oldJti: jti, newJti: 'custom' }),
    ).rejects.toThrow(/UUID/);
    expect(await store.get('uuid', session.sessionId, now)).toMatchObject({ jti });
  });

  it('slides an opaque session kept to the second: used every 100 ms, a 2 s idle lifetime never ends', async () => {
    setUp();
    const auth = createAuth({
      secret: SECRET,
      store,
      strategy: 'session',
      sessionIdleTtl: 2,
      accessTokenTtl: 1,
    });
    try {
      const { access_token: token } = await auth.generateTokens({ id: 'sliding' });
      const until = Date.now() + 3500;
      while (Date.now() < until) {
        await expect(auth.getData(token)).resolves.toMatchObject({ sub: 'sliding' });
        await sleep(100);
      }
    } finally {
      await auth.close();
    }
  });

  it('writes binary records by default, text ones with the option, and checks it', async () => {
    const keyOfDefault = setUp();
    const now = Date.now();
    const jti = randomUUID();
    const session = { sessionId: 'GGGGGGGGGGGGGGGG', jti, now, expiresAt: now + 60_000, ...META };
    await store.create('default', session, 0);
    expect(await client.hgetallBuffer(keyOfDefault('default'))).toEqual({
      [session.sessionId]: binaryRecord({ ...session, createdAt: now })!.core,
    });
    await store.close();
    client.disconnect();

    const keyOf = setUp('text');
    await store.create('text', session, 0);
    const hash = await client.hgetall(keyOf('text'));
    expect(hash).toEqual({
      [session.sessionId]: packCore({ ...session, createdAt: now, previousJti: '', rotatedAt: 0 }),
      [`${session.sessionId}:0`]: `${META.ip}|${META.userAgent}`,
    });
    expect(await store.get('text', session.sessionId, now)).toMatchObject({ jti, ...META });

    expect(() => redisStore(client, { recordFormat: 'json' as 'text' })).toThrow(AuthConfigError);
    // Binary records keep expiries to the second: an idle lifetime of one could never slide.
    const binaryStore = () => redisStore(client, { keyPrefix: uniquePrefix() });
    expect(() => createAuth({ secret: SECRET, store: binaryStore(), sessionIdleTtl: 1 })).toThrow(
      /sessionIdleTtl.*at least 2 s/,
    );
    expect(() => createAuth({ secret: SECRET, store: store, sessionIdleTtl: 1 })).not.toThrow();
    expect(() => createAuth({ secret: SECRET, recordFormat: 'text' })).toThrow(
      /recordFormat.*needs the `redis` option/,
    );
    await createAuth({ secret: SECRET, recordFormat: 'binary' }).close();
    expect(() => createAuth({ secret: SECRET, recordFormat: 'json' as 'text' })).toThrow(
      /recordFormat.*must be 'binary' or 'text'/,
    );
  });
});
