import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  memoryStore,
  postgresStore,
  redisStore,
  type SessionRecord,
  type SessionStore,
} from '../../src/index.js';
import { successorJti } from '../../src/tokens/issue.js';
import {
  allKeys,
  clusterClient,
  harnessRedisUrl,
  onCluster,
  redisClient,
  uniquePrefix,
} from '../helpers/auth.js';
import { dropSchema, testPool, uniqueSchema } from '../helpers/postgres.js';

/*
 * Differential test of the stores: seeded random sequences of every SessionStore operation, run
 * on the memory store (the model: plain JavaScript) and on another store side by side, every
 * answer compared, and every user's session list compared every few steps and at the end. The
 * contract suite checks each behaviour once; this one checks that the Redis scripts (batched,
 * with their fast paths, the large-hash paths past SCAN_FIELDS, caps and grace windows) and the
 * PostgreSQL queries agree with the model over long histories no one wrote by hand.
 *
 * Time is the test's own clock, in whole seconds (what binary records keep), passed to every
 * operation as `now`: it runs ahead of the real clock, so nothing expires in Redis by itself
 * during a run, and sessions expire in the sequences only by `now`. `STORE_MODEL_SEED=<n>`
 * replays one seed (a failure names its seed and step).
 */

const STEPS = 800;
/** Few users, so that each gathers many sessions (past SCAN_FIELDS) and shared hashes mix owners. */
const USERS = 4;
/** The share of rotations that slide a session (its jti into itself). */
const SLIDING = 0.05;
const SEEDS = process.env.STORE_MODEL_SEED ? [Number(process.env.STORE_MODEL_SEED)] : [1, 2];

/** A small, seeded PRNG (mulberry32): the same seed gives the same sequence of operations. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const IPS = ['', '203.0.113.7', '2001:db8::1f:7', '10.0.0.255'];
const AGENTS = [
  '',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'curl/8.5.0',
  `Agent|pipe 😀 中文 ${'x'.repeat(300)}`,
];
/** Session lifetimes in seconds: some end within a run of steps, some outlive it. */
const TTLS = [4, 15, 60, 400, 3600];

interface Variant {
  name: string;
  open(): SessionStore;
  maxSessions: number;
  graceMs: number;
  successor: boolean;
}

/** What the model knows of a session it created, to pick meaningful arguments. */
interface Known {
  userId: string;
  sessionId: string;
  /** Every jti the session has had, the live one last. */
  jtis: string[];
  expiresAt: number;
  /** Its lifetime in s, which its rotations mostly keep (as refreshTokenTtl does). */
  ttl: number;
}

type Step = () => Promise<unknown>;

/**
 * A record as every store should give it, without `previousJti`: what a store keeps of the
 * replaced jti is its own (none without a grace window or with successor jtis, a prefix in text
 * records); what it means is checked through rotate's answers instead.
 */
function comparable(record: SessionRecord | undefined) {
  if (record === undefined) return record;
  const { previousJti: _kept, ...rest } = record;
  return rest;
}

async function runSequence(seed: number, variant: Variant): Promise<void> {
  const next = random(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const model = memoryStore();
  const store = variant.open();
  const run = `r${randomUUID().slice(0, 6)}`;
  const users = Array.from({ length: USERS }, (_, i) => `${run}-user-${i}`);
  const known: Known[] = [];
  const lastRotated = new Map<string, Known>();
  let now = Math.ceil(Date.now() / 1000) * 1000 + 60_000;
  /** What the sequence reached, checked at the end so that it cannot pass by testing little. */
  const seen = { outcomes: new Set<string>(), largest: 0 };
  const where = (step: number, what: string) => `seed ${seed}, step ${step}: ${what}`;

  /** Both stores' answers to the same call, compared. */
  async function both<T>(
    step: number,
    what: string,
    call: (s: SessionStore) => Promise<T>,
    compare: (a: T) => unknown = (a) => a,
  ): Promise<void> {
    const [expected, actual] = await Promise.all([call(model), call(store)]);
    expect(compare(actual), where(step, what)).toEqual(compare(expected));
  }

  const listOf = (records: SessionRecord[]) => {
    seen.largest = Math.max(seen.largest, records.length);
    return records.map((r) => comparable(r));
  };

  /** One random operation on `userId`: a function that runs it on both stores. */
  function operation(step: number, userId: string): Step {
    const mine = known.filter((k) => k.userId === userId);
    const roll = next();
    if (roll < 0.36 || mine.length === 0) {
      const ttl = pick(TTLS);
      const session = {
        sessionId: randomUUID().replaceAll('-', '').slice(0, 16),
        jti: randomUUID(),
        now,
        expiresAt: now + ttl * 1000,
        ip: pick(IPS),
        userAgent: pick(AGENTS),
      };
      known.push({
        userId,
        sessionId: session.sessionId,
        jtis: [session.jti],
        expiresAt: session.expiresAt,
        ttl,
      });
      return () =>
        both(step, `create ${session.sessionId}`, (s) =>
          s.create(userId, { ...session }, variant.maxSessions),
        );
    }
    // Mostly sessions the model believes live; now and then any it ever made.
    const current = mine.filter((m) => m.expiresAt > now);
    const k = current.length > 0 && next() < 0.9 ? pick(current) : pick(mine);
    if (roll < 0.7) {
      // A stale jti within the grace window needs the session rotated a moment ago: the user's
      // last rotated one, with the jti that rotation replaced.
      const last = lastRotated.get(userId);
      const which = next();
      const recent = which < 0.15 && last !== undefined;
      const r = recent ? last : k;
      const live = r.jtis[r.jtis.length - 1]!;
      const oldJti = recent
        ? r.jtis[r.jtis.length - 2]!
        : which < 0.85
          ? live
          : which < 0.95
            ? pick(r.jtis)
            : randomUUID();
      // Sliding sessions rotate a jti into itself: it stays, the expiry and the last use move.
      // Only without successor jtis: one session never mixes the two (the redis strategy names
      // successors, the session strategy slides), and a store keeps for a stale jti what its
      // session's kind of rotation needs.
      const sliding = !variant.successor && next() < SLIDING;
      const { successor } = variant;
      const newJti = sliding
        ? oldJti
        : successor
          ? successorJti(r.sessionId, oldJti)
          : randomUUID();
      const rotation = {
        sessionId: r.sessionId,
        oldJti,
        newJti,
        now,
        // Now and then a rotation that shortens or lengthens the session.
        expiresAt: now + (next() < 0.1 ? pick(TTLS) : r.ttl) * 1000,
        graceMs: variant.graceMs,
        ...(successor ? { successor } : {}),
      };
      return async () => {
        const [expected, actual] = await Promise.all([
          model.rotate(userId, { ...rotation }),
          store.rotate(userId, { ...rotation }),
        ]);
        expect(
          actual,
          where(step, `rotate ${r.sessionId} ${oldJti === live ? 'live' : 'stale'} jti`),
        ).toBe(expected);
        seen.outcomes.add(expected);
        if (expected === 'rotated') {
          if (newJti !== oldJti) {
            r.jtis.push(newJti);
            lastRotated.set(userId, r);
          }
          r.expiresAt = rotation.expiresAt;
        } else if (expected === 'reused') r.expiresAt = 0;
      };
    }
    if (roll < 0.78)
      return () =>
        both(
          step,
          `get ${k.sessionId}`,
          (s) => s.get(userId, k.sessionId, now),
          (r) => comparable(r),
        );
    if (roll < 0.86)
      return () => both(step, `isLive ${k.sessionId}`, (s) => s.isLive(userId, k.sessionId, now));
    if (roll < 0.94) return () => both(step, `list ${userId}`, (s) => s.list(userId, now), listOf);
    if (roll < 0.997) {
      // revoke answers whether a live session ended, by the real clock: a session that has only
      // expired by this test's clock may still be held by one store and gone from the other.
      const expired = k.expiresAt <= now;
      return () =>
        both(
          step,
          `revoke ${k.sessionId}`,
          (s) => s.revoke(userId, k.sessionId),
          (answer) => (expired ? 'not compared' : answer),
        );
    }
    return () => both(step, `revokeAll ${userId}`, (s) => s.revokeAll(userId, now));
  }

  async function listsAgree(step: number): Promise<void> {
    for (const userId of users)
      await both(step, `list ${userId}`, (s) => s.list(userId, now), listOf);
  }

  try {
    for (let step = 0; step < STEPS; step++) {
      // One to four operations at once, each on a user of its own: the Redis store batches the
      // concurrent ones into one script call, and operations on different users commute.
      const count = 1 + Math.floor(next() * 4);
      const chosen = [...users].sort(() => next() - 0.5).slice(0, count);
      const steps = chosen.map((userId) => operation(step, userId));
      await Promise.all(steps.map((go) => go()));
      if (step % 50 === 49) await listsAgree(step);
      // At least a second a step: no two sessions of a user share a creation time (lists sort by it).
      now += (1 + Math.floor(next() * 3)) * 1000;
    }
    await listsAgree(STEPS);
    const outcomes = [
      'missing',
      'reused',
      'rotated',
      ...(variant.graceMs > 0 ? ['superseded'] : []),
    ];
    expect([...seen.outcomes].sort(), `seed ${seed}: rotate's answers`).toEqual(outcomes.sort());
    // Without a cap, users gather more sessions than SCAN_FIELDS (16): the large-hash paths ran.
    expect(seen.largest, `seed ${seed}: most sessions of a user`).toBeGreaterThanOrEqual(
      variant.maxSessions === 0 ? 17 : Math.min(variant.maxSessions, 17),
    );
  } finally {
    await Promise.all([model.close(), store.close()]);
  }
}

// The `cluster` project runs this file again against the harness's Redis Cluster (Redis only).
const cluster = onCluster();
const redisName = cluster ? 'Redis Cluster' : 'Redis';
type Client = ReturnType<typeof redisClient>;
let client: Client;
let pool: pg.Pool;
const prefixes: string[] = [];
const schema = uniqueSchema();
beforeAll(async () => {
  client = cluster ? clusterClient() : redisClient(harnessRedisUrl());
  if (cluster) return;
  pool = testPool();
  await postgresStore(pool, { schema, pruneInterval: 0 }).migrate();
});
afterAll(async () => {
  // One key at a time: on a Cluster, keys of different slots cannot go in one DEL.
  for (const prefix of prefixes)
    for (const key of await allKeys(client, `${prefix}*`)) await client.del(key);
  await client.quit();
  if (cluster) return;
  await dropSchema(pool, schema);
  await pool.end();
});

function onRedis(
  name: string,
  config: { keyBuckets?: number; recordFormat?: 'binary' | 'text' },
  rest: Omit<Variant, 'name' | 'open'>,
): Variant {
  const keyPrefix = uniquePrefix();
  prefixes.push(keyPrefix);
  return {
    name: `${redisName}, ${name}`,
    open: () => redisStore(client, { keyPrefix, ...config }),
    ...rest,
  };
}

const VARIANTS: Variant[] = [
  onRedis('binary records, no cap, no grace', {}, { maxSessions: 0, graceMs: 0, successor: false }),
  onRedis(
    'binary records, cap 3, grace 5 s',
    {},
    { maxSessions: 3, graceMs: 5000, successor: false },
  ),
  onRedis(
    'binary records, cap 20, grace 5 s, successor jtis',
    {},
    { maxSessions: 20, graceMs: 5000, successor: true },
  ),
  onRedis(
    'text records, cap 3, grace 5 s',
    { recordFormat: 'text' },
    { maxSessions: 3, graceMs: 5000, successor: false },
  ),
  onRedis(
    'text records, no cap, grace 5 s, successor jtis',
    { recordFormat: 'text' },
    { maxSessions: 0, graceMs: 5000, successor: true },
  ),
  onRedis(
    'shared keys (1 hash), cap 3, grace 5 s',
    { keyBuckets: 1 },
    { maxSessions: 3, graceMs: 5000, successor: false },
  ),
  onRedis(
    'shared keys (3 hashes), no cap, grace 5 s, successor jtis',
    { keyBuckets: 3 },
    { maxSessions: 0, graceMs: 5000, successor: true },
  ),
  onRedis(
    'shared keys (1 hash), text records, cap 20, no grace',
    { keyBuckets: 1, recordFormat: 'text' },
    { maxSessions: 20, graceMs: 0, successor: false },
  ),
];
if (!cluster)
  VARIANTS.push(
    {
      name: 'PostgreSQL, cap 3, grace 5 s',
      open: () => postgresStore(pool, { schema, pruneInterval: 0 }),
      maxSessions: 3,
      graceMs: 5000,
      successor: false,
    },
    {
      name: 'PostgreSQL, no cap, grace 5 s, successor jtis',
      open: () => postgresStore(pool, { schema, pruneInterval: 0 }),
      maxSessions: 0,
      graceMs: 5000,
      successor: true,
    },
  );

describe('the stores agree with the memory store over random histories', () => {
  for (const variant of VARIANTS)
    for (const seed of SEEDS)
      it(`${variant.name} (seed ${seed})`, () => runSequence(seed, variant), 120_000);
});
