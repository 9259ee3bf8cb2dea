import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Auth, TokenPair } from '../../src/index.js';
import { redisClient, testAuth, type TestRedis, uniquePrefix } from '../helpers/auth.js';
import { decodeSegment } from '../helpers/forge.js';
import { serve, type Served } from '../helpers/http.js';
import { SCAN_FIELDS } from '../../src/stores/lua.js';
import { idApp, liveJti, type Sent, send, storeViolations } from '../helpers/load.js';

/*
 * Races, on the shared harness Redis under a prefix of their own. Each test checks its invariants
 * afterwards by reading Redis directly: at most one live refresh token per family, no family
 * alive after its revocation, every key expiring, hash and expiry index in agreement.
 */

const BOUND_MS = 10_000;

let client: TestRedis;
let auth: Auth;
let server: Served;
let prefix: string;

beforeAll(() => {
  client = redisClient();
});
afterAll(async () => {
  await client.quit();
});
afterEach(async () => {
  await server?.close();
  await auth?.close();
});

async function start(options: Parameters<typeof testAuth>[0] = {}): Promise<void> {
  prefix = uniquePrefix();
  auth = testAuth({ keyPrefix: prefix, ...options });
  server = await serve(idApp(auth));
}

const login = (id: string) => send(server.url, '/login', { body: { id } }, BOUND_MS);
const refresh = (token: string) =>
  send(server.url, '/refresh', { body: { refresh_token: token } }, BOUND_MS);
const logout = (token: string) =>
  send(server.url, '/logout', { body: { refresh_token: token } }, BOUND_MS);
const me = (token: string) => send(server.url, '/me', { token }, BOUND_MS);

interface Family {
  sub: string;
  sid: string;
  /** Every pair handed out for this family, the login's first. */
  pairs: TokenPair[];
}

function familyOf(pair: TokenPair): Family {
  const { sub, sid } = decodeSegment(pair.refresh_token, 1) as { sub: string; sid: string };
  return { sub, sid, pairs: [pair] };
}

async function loginFamilies(users: number, perUser: number): Promise<Family[]> {
  const replies = await Promise.all(
    Array.from({ length: users * perUser }, (_, i) => login(`user-${i % users}`)),
  );
  for (const r of replies) expect(r.status).toBe(200);
  return replies.map((r) => familyOf(r.body as TokenPair));
}

/**
 * Ten raced families a user and six that take no part: each user's hash is large
 * (SCAN_FIELDS) before the race, and once the raced families are revoked, small but not empty,
 * so the audit sees that the shrinking writes removed its prune mark.
 */
async function largeThenSmall(): Promise<Family[]> {
  const families = await loginFamilies(3, 10);
  await loginFamilies(3, 6);
  for (let user = 0; user < 3; user++)
    expect(await client.hlen(`${prefix}{u:user-${user}}`)).toBeGreaterThanOrEqual(SCAN_FIELDS);
  return families;
}

/** How many of the refresh tokens handed out for the family still work. */
async function liveTokens(family: Family): Promise<number> {
  let live = 0;
  for (const pair of family.pairs) if (await auth.checkRefreshToken(pair.refresh_token)) live++;
  return live;
}

/** The family is gone: not in Redis, none of its refresh tokens works, its access tokens get 401. */
async function expectRevoked(family: Family): Promise<void> {
  expect(await liveJti(client, prefix, family.sub, family.sid)).toBeUndefined();
  expect(await client.hexists(`${prefix}{u:${family.sub}}`, family.sid)).toBe(0);
  expect(await liveTokens(family)).toBe(0);
  for (const pair of family.pairs) expect((await me(pair.access_token)).status).toBe(401);
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

describe('concurrency', () => {
  it('strict reuse detection: of many parallel refreshes per token, across many families, one wins and the family is revoked', async () => {
    await start({ refreshGracePeriod: 0 });
    const families = await largeThenSmall();
    const racers = 6;
    const jobs = shuffle(
      families.flatMap((family) =>
        Array.from({ length: racers }, () => ({ family, reply: undefined as Sent | undefined })),
      ),
    );
    await Promise.all(
      jobs.map(async (job) => (job.reply = await refresh(job.family.pairs[0]!.refresh_token))),
    );
    for (const family of families) {
      const replies = jobs.filter((j) => j.family === family).map((j) => j.reply!);
      const won = replies.filter((r) => r.status === 200);
      expect(won).toHaveLength(1);
      for (const r of replies.filter((x) => x.status !== 200)) {
        expect(r.status).toBe(401);
        expect(r.body.error).toMatch(/^(refresh_reused|token_revoked)$/);
      }
      family.pairs.push(won[0]!.body as TokenPair);
    }
    // The losers presented a rotated token: theft is assumed and each family is gone, winner included.
    for (const family of families) await expectRevoked(family);
    expect(await client.hlen(`${prefix}{u:user-0}`)).toBeGreaterThan(0);
    expect(await storeViolations(client, prefix)).toEqual([]);
  });

  it('with refreshGracePeriod: rounds of parallel refreshes leave exactly one live chain per family', async () => {
    await start({ refreshGracePeriod: 30 });
    // Ten families a user: the hashes are large, and the audit checks their marks.
    const families = await loginFamilies(3, 10);
    for (let round = 0; round < 4; round++) {
      const jobs = shuffle(
        families.flatMap((family) =>
          Array.from({ length: 5 }, () => ({ family, reply: undefined as Sent | undefined })),
        ),
      );
      const current = new Map(families.map((f) => [f, f.pairs.at(-1)!.refresh_token]));
      await Promise.all(
        jobs.map(async (job) => (job.reply = await refresh(current.get(job.family)!))),
      );
      for (const family of families) {
        const replies = jobs.filter((j) => j.family === family).map((j) => j.reply!);
        // One rotation; the others are answered with the same live chain, none with an error.
        for (const r of replies) expect(r.status).toBe(200);
        const jtis = new Set(
          replies.map((r) => decodeSegment((r.body as TokenPair).refresh_token, 1).jti),
        );
        expect(jtis.size).toBe(1);
        family.pairs.push(...replies.map((r) => r.body as TokenPair));
      }
    }
    for (const family of families) {
      const last = decodeSegment(family.pairs.at(-1)!.refresh_token, 1) as { jti: string };
      expect(await liveJti(client, prefix, family.sub, family.sid)).toBe(last.jti);
      // Exactly the last round's five refresh tokens work: all of them carry the one live id.
      expect(await liveTokens(family)).toBe(5);
    }
    expect(await storeViolations(client, prefix)).toEqual([]);
  });

  it('logout racing refresh: whoever wins, the family ends dead, including tokens the refresh handed out', async () => {
    await start();
    const families = await largeThenSmall();
    const jobs = shuffle(
      families.flatMap((family) => [
        { family, kind: 'refresh' as const, reply: undefined as Sent | undefined },
        { family, kind: 'refresh' as const, reply: undefined as Sent | undefined },
        { family, kind: 'logout' as const, reply: undefined as Sent | undefined },
      ]),
    );
    await Promise.all(
      jobs.map(async (job) => {
        const token = job.family.pairs[0]!.refresh_token;
        job.reply = await (job.kind === 'logout' ? logout(token) : refresh(token));
      }),
    );
    for (const job of jobs) {
      if (job.kind === 'logout') expect(job.reply!.status).toBe(204);
      else expect([200, 401]).toContain(job.reply!.status);
      if (job.kind === 'refresh' && job.reply!.status === 200)
        job.family.pairs.push(job.reply!.body as TokenPair);
    }
    for (const family of families) await expectRevoked(family);
    expect(await client.hlen(`${prefix}{u:user-0}`)).toBeGreaterThan(0);
    expect(await storeViolations(client, prefix)).toEqual([]);
  });

  it('revokeAllSessions racing logins and refreshes: nothing from before survives, and every login is accounted for', async () => {
    await start();
    const user = 'user-0'; // the one user loginFamilies(1, …) logs in
    const earlier = await loginFamilies(1, 10);
    const revokeCalls: { startedAt: number; count?: number }[] = [];
    const logins: { reply?: Sent; answeredAt?: number }[] = Array.from({ length: 20 }, () => ({}));
    await Promise.all([
      ...logins.map(async (entry) => {
        entry.reply = await login(user);
        entry.answeredAt = Date.now();
      }),
      ...earlier.map(async (family) => {
        const reply = await refresh(family.pairs[0]!.refresh_token);
        expect([200, 401]).toContain(reply.status);
        if (reply.status === 200) family.pairs.push(reply.body as TokenPair);
      }),
      ...[0, 5, 15].map(async (delay) => {
        await new Promise((resolve) => setTimeout(resolve, delay));
        const call: { startedAt: number; count?: number } = { startedAt: Date.now() };
        revokeCalls.push(call);
        call.count = await auth.revokeAllSessions(user);
      }),
    ]);
    // Logged in before any revocation started: dead, whatever their refreshes did meanwhile.
    for (const family of earlier) await expectRevoked(family);

    const later = logins.map((entry) => {
      expect(entry.reply!.status).toBe(200);
      return { family: familyOf(entry.reply!.body as TokenPair), answeredAt: entry.answeredAt! };
    });
    const lastRevocation = Math.max(...revokeCalls.map((c) => c.startedAt));
    let alive = 0;
    for (const { family, answeredAt } of later) {
      const live = await liveTokens(family);
      const inRedis = (await liveJti(client, prefix, family.sub, family.sid)) !== undefined;
      expect(live).toBe(inRedis ? 1 : 0);
      // A login answered before the last revocation began cannot have outlived it.
      if (answeredAt < lastRevocation) expect(inRedis).toBe(false);
      if (inRedis) alive++;
    }
    // Each family was either counted (and removed) by exactly one revocation, or is still alive.
    const revoked = revokeCalls.reduce((sum, c) => sum + c.count!, 0);
    expect(alive + revoked).toBe(earlier.length + later.length);
    expect((await auth.listSessions(user)).length).toBe(alive);
    expect(await storeViolations(client, prefix)).toEqual([]);
  });
});
