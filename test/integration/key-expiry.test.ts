import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CREATE_FIELDS,
  CREATE_SESSION,
  EXPIRE_GT,
  ROTATE_FIELDS,
  ROTATE_SESSION,
} from '../../src/stores/lua.js';
import { packArgs } from '../../src/stores/script-args.js';
import { compactUuid, packCore, uuidBytes } from '../../src/stores/record-codec.js';
import { RedisServer, redisServerMajor } from '../helpers/redis-server.js';

/*
 * A user's hash expires with its latest family. On Redis 7 and later the scripts push the expiry
 * out with one PEXPIREAT … GT; before 7, with PTTL and TIME. On Redis 7 the older path runs here
 * as the same scripts with the version test answered "no"; on Redis 6 (`npm run test:redis6`) it
 * is the scripts' own.
 */

const BEFORE_7 = redisServerMajor() < 7;

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

const VARIANTS: Record<string, (lua: string) => string> = BEFORE_7
  ? { 'before Redis 7 (PTTL and TIME), on this Redis 6': (lua) => lua }
  : {
      'Redis 7 and later (PEXPIREAT GT)': (lua) => lua,
      'before Redis 7 (PTTL and TIME)': (lua) => lua.replace(EXPIRE_GT, 'false'),
    };

/**
 * A key's expiry in epoch ms: PEXPIRETIME from Redis 7; before, Redis's clock plus the PTTL,
 * which may be a millisecond short of what PEXPIREAT set.
 */
async function expiryOf(key: string): Promise<number> {
  if (!BEFORE_7) return (await redis.call('PEXPIRETIME', key)) as number;
  return (await redis.eval(
    "local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000) + redis.call('PTTL', KEYS[1])",
    1,
    key,
  )) as number;
}

/** The expiry is `at` (to the millisecond Redis 6's PTTL can be off by). */
async function expectExpiry(key: string, at: number): Promise<void> {
  const expiry = await expiryOf(key);
  if (BEFORE_7) expect(Math.abs(expiry - at), `${expiry} against ${at}`).toBeLessThanOrEqual(1);
  else expect(expiry).toBe(at);
}

describe.each(Object.entries(VARIANTS))(
  'the user key expires with its latest family, %s',
  (name, variant) => {
    const key = `expiry:${name.length}:{u:${randomUUID()}}`;
    const create = (sessionId: string, jti: string, expiresAt: number, on = key) => {
      const now = Date.now();
      return redis.eval(
        variant(CREATE_SESSION),
        1,
        on,
        packArgs(CREATE_FIELDS, {
          owner: '',
          sessionId,
          core: packCore({ jti, previousJti: '', rotatedAt: 0, createdAt: now, expiresAt }),
          expiresAt,
          expiresAtText: String(expiresAt),
          now,
          maxSessions: 0,
        }),
      );
    };

    it('runs the variant it names', () => {
      expect(CREATE_SESSION).toContain(`local EXPIRE_GT = ${EXPIRE_GT}`);
      expect(variant(CREATE_SESSION)).toContain(
        name.startsWith('before') && !BEFORE_7
          ? 'local EXPIRE_GT = false'
          : `local EXPIRE_GT = ${EXPIRE_GT}`,
      );
    });

    it('a later login moves it out, an earlier one leaves it, a key without one gets one', async () => {
      const base = Date.now() + 600_000;
      await create('s1', randomUUID(), base);
      await expectExpiry(key, base);
      await redis.config('RESETSTAT');
      await create('s2', randomUUID(), base + 5_000);
      // One PEXPIREAT … GT on Redis 7, else PTTL and TIME first (read before expectExpiry, which
      // asks PTTL and TIME itself on Redis 6).
      const stats = await redis.info('commandstats');
      expect(stats.includes('cmdstat_pttl:')).toBe(name.startsWith('before'));
      expect(stats.includes('cmdstat_time:')).toBe(name.startsWith('before'));
      await expectExpiry(key, base + 5_000);
      await create('s3', randomUUID(), base - 5_000);
      await expectExpiry(key, base + 5_000);
      // A key that lost its expiry (PERSIST by hand) gets the next family's.
      await redis.persist(key);
      await create('s4', randomUUID(), base + 1_000);
      await expectExpiry(key, base + 1_000);
    });

    it('a rotation moves it out to the rotated family’s new end', async () => {
      const rotated = `${key}:r`;
      const jti = randomUUID();
      const successor = randomUUID();
      const base = Date.now() + 600_000;
      await create('r1', jti, base, rotated);
      const now = Date.now();
      const next = base + 60_000;
      const result = await redis.eval(
        variant(ROTATE_SESSION),
        1,
        rotated,
        packArgs(ROTATE_FIELDS, {
          owner: '',
          sessionId: 'r1',
          oldJti: compactUuid(jti),
          newJti: compactUuid(successor),
          oldBytes: uuidBytes(jti),
          newBytes: uuidBytes(successor),
          now,
          expiresAt: next,
          expiresAtText: String(next),
          graceMs: 0,
          successor: false,
          now36: now.toString(36),
          expiresAt36: next.toString(36),
        }),
      );
      expect(result).toBe(1);
      await expectExpiry(rotated, next);
    });
  },
);
