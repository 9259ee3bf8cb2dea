import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CREATE_FIELDS,
  CREATE_SESSION,
  EXPIRE_GT,
  packArgs,
  ROTATE_FIELDS,
  ROTATE_SESSION,
} from '../../src/stores/lua.js';
import { compactUuid, packCore, uuidBytes } from '../../src/stores/record-codec.js';
import { RedisServer } from '../helpers/redis-server.js';

/*
 * A user's hash expires with its latest family. On Redis 7 and later the scripts push the expiry
 * out with one PEXPIREAT … GT; before 7, with PTTL and TIME. This Redis is 7 or later, so the
 * older path runs here as the same scripts with the version test answered "no".
 */

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

const VARIANTS = {
  'Redis 7 and later (PEXPIREAT GT)': (lua: string) => lua,
  'before Redis 7 (PTTL and TIME)': (lua: string) => lua.replace(EXPIRE_GT, 'false'),
};

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
    const expiry = () => redis.call('PEXPIRETIME', key) as Promise<number>;

    it('runs the variant it names', () => {
      expect(CREATE_SESSION).toContain(`local EXPIRE_GT = ${EXPIRE_GT}`);
      expect(variant(CREATE_SESSION)).toContain(
        name.startsWith('before') ? 'local EXPIRE_GT = false' : `local EXPIRE_GT = ${EXPIRE_GT}`,
      );
    });

    it('a later login moves it out, an earlier one leaves it, a key without one gets one', async () => {
      const base = Date.now() + 600_000;
      await create('s1', randomUUID(), base);
      expect(await expiry()).toBe(base);
      await redis.config('RESETSTAT');
      await create('s2', randomUUID(), base + 5_000);
      expect(await expiry()).toBe(base + 5_000);
      // One PEXPIREAT … GT on Redis 7, else PTTL and TIME first.
      const stats = await redis.info('commandstats');
      expect(stats.includes('cmdstat_pttl:')).toBe(name.startsWith('before'));
      expect(stats.includes('cmdstat_time:')).toBe(name.startsWith('before'));
      await create('s3', randomUUID(), base - 5_000);
      expect(await expiry()).toBe(base + 5_000);
      // A key that lost its expiry (PERSIST by hand) gets the next family's.
      await redis.persist(key);
      await create('s4', randomUUID(), base + 1_000);
      expect(await expiry()).toBe(base + 1_000);
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
      expect(await redis.call('PEXPIRETIME', rotated)).toBe(next);
    });
  },
);
