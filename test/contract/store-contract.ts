import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Auth, AuthOptions, SessionStore } from '../../src/index.js';

/**
 * The SessionStore contract, as one suite every store runs (built in or your own): give it a
 * factory of stores over one backend and an Auth factory on such a store. Every test uses user
 * ids of its own, so stores may share a backend with other tests.
 */
export interface ContractBackend {
  name: string;
  /** A store on the backend; closing it must leave the backend usable by the next one. */
  open(): SessionStore;
  /** Whether expired sessions are removed by `prune` (stores whose data expires by itself need none). */
  prunes: boolean;
  /** What the store keeps times to: see {@link keptTimes}. @default 1 (every ms) */
  timeResolution?: number;
  /**
   * Whether the store's commands can run after the app gave up on them (a remote backend), so
   * that it stamps a rotation, and judges a replaced jti, at the later of its `now` and the
   * backend's clock (SessionStore's contract).
   * @default false (the memory store, and any store that runs each call when it is made)
   */
  runsLate?: boolean;
}

/**
 * The times a store gives back, for one that keeps them to `resolution` ms (the Redis store's
 * binary records: to the second): an expiry rounded down (never a longer session), a last use
 * rounded up (never a shorter grace window). createdAt is always kept to the ms.
 */
export const keptTimes = (resolution = 1) => ({
  expiry: (ms: number) => Math.floor(ms / resolution) * resolution,
  use: (ms: number) => Math.ceil(ms / resolution) * resolution,
});

const HOUR = 3_600_000;

/** A JWT's payload, unverified (for reading the claims the library set). */
const payloadOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
const user = () => `u-${randomUUID()}`;
const sid = () => randomUUID().replaceAll('-', '').slice(0, 16);
const jti = () => randomUUID();

function session(now: number, ttl = HOUR, extra: Partial<{ ip: string; userAgent: string }> = {}) {
  return {
    sessionId: sid(),
    jti: jti(),
    now,
    expiresAt: now + ttl,
    ip: extra.ip ?? '',
    userAgent: extra.userAgent ?? '',
  };
}

export function storeContract(backend: ContractBackend): void {
  const { expiry, use } = keptTimes(backend.timeResolution);
  describe(`SessionStore contract: ${backend.name}`, () => {
    const withStore = (test: (store: SessionStore) => Promise<void>) => async () => {
      const store = backend.open();
      try {
        await test(store);
      } finally {
        await store.close();
      }
    };

    it(
      'ping, when the store has it, resolves while the backend answers',
      withStore(async (store) => {
        await expect(Promise.resolve(store.ping?.())).resolves.toBeUndefined();
      }),
    );

    it(
      'create records a session that get, isLive and list return',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const s = session(now, HOUR, { ip: '203.0.113.9', userAgent: 'Agent|with pipe/1.0' });
        await store.create(u, s, 10);
        const record = await store.get(u, s.sessionId, now);
        expect(record).toEqual({
          sessionId: s.sessionId,
          jti: s.jti,
          previousJti: '',
          rotatedAt: 0,
          createdAt: now,
          lastUsedAt: now,
          expiresAt: expiry(s.expiresAt),
          ip: '203.0.113.9',
          userAgent: 'Agent|with pipe/1.0',
        });
        expect(await store.isLive(u, s.sessionId, now)).toBe(true);
        expect(await store.list(u, now)).toEqual([record]);
        expect(await store.get(u, 'nosuchsession', now)).toBeUndefined();
        expect(await store.isLive(u, 'nosuchsession', now)).toBe(false);
      }),
    );

    it(
      'metadata round-trips byte for byte, any Unicode, wherever a character falls',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        // Emoji (surrogate pairs, 4 UTF-8 bytes), a ZWJ sequence, CJK, combining marks and a
        // pipe, shifted across every offset around the 64-byte and 64-character boundaries.
        const samples: string[] = [];
        for (let offset = 40; offset < 72; offset++) {
          samples.push(`${'a'.repeat(offset)}😀 👩‍💻 中文 é|x ${'b'.repeat(20)}`);
        }
        samples.push('😀'.repeat(40), '中'.repeat(60), 'Mozilla/5.0 (Ξ; Ωmega) 🦊🦊🦊');
        const ip = '2001:db8::1';
        const sessions = samples.map((userAgent) => session(now, HOUR, { ip, userAgent }));
        for (const s of sessions) await store.create(u, s, 0);
        const listed = new Map((await store.list(u, now)).map((r) => [r.sessionId, r]));
        for (const s of sessions) {
          expect(listed.get(s.sessionId)?.userAgent).toBe(s.userAgent);
          expect(listed.get(s.sessionId)?.ip).toBe(ip);
          expect((await store.get(u, s.sessionId, now))?.userAgent).toBe(s.userAgent);
        }
      }),
    );

    it(
      'a session is answered for by no other user',
      withStore(async (store) => {
        const [a, b] = [user(), user()];
        const now = Date.now();
        const s = session(now);
        await store.create(a, s, 10);
        expect(await store.get(b, s.sessionId, now)).toBeUndefined();
        expect(await store.isLive(b, s.sessionId, now)).toBe(false);
        expect(await store.revoke(b, s.sessionId)).toBe(false);
        expect(
          await store.rotate(b, {
            sessionId: s.sessionId,
            oldJti: s.jti,
            newJti: jti(),
            now,
            expiresAt: now + HOUR,
            graceMs: 0,
          }),
        ).toBe('missing');
        expect(await store.isLive(a, s.sessionId, now)).toBe(true);
      }),
    );

    it(
      'nothing is answered for an expired session',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const s = session(now, 1000);
        await store.create(u, s, 10);
        const later = now + 1000;
        expect(await store.get(u, s.sessionId, later)).toBeUndefined();
        expect(await store.isLive(u, s.sessionId, later)).toBe(false);
        expect(await store.list(u, later)).toEqual([]);
        expect(
          await store.rotate(u, {
            sessionId: s.sessionId,
            oldJti: s.jti,
            newJti: jti(),
            now: later,
            expiresAt: later + HOUR,
            graceMs: 0,
          }),
        ).toBe('missing');
      }),
    );

    it(
      'rotate replaces the jti and keeps createdAt; the old jti then ends the session (reuse)',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const s = session(now);
        await store.create(u, s, 10);
        const next = jti();
        const rotation = { sessionId: s.sessionId, now: now + 10, expiresAt: now + 2 * HOUR };
        expect(
          await store.rotate(u, { ...rotation, oldJti: s.jti, newJti: next, graceMs: 0 }),
        ).toBe('rotated');
        const record = await store.get(u, s.sessionId, now + 10);
        expect(record).toMatchObject({
          jti: next,
          createdAt: now,
          lastUsedAt: use(now + 10),
          expiresAt: expiry(now + 2 * HOUR),
        });
        expect(
          await store.rotate(u, {
            ...rotation,
            now: now + 20,
            oldJti: s.jti,
            newJti: jti(),
            graceMs: 0,
          }),
        ).toBe('reused');
        expect(await store.isLive(u, s.sessionId, now + 20)).toBe(false);
        expect(
          await store.rotate(u, {
            ...rotation,
            now: now + 30,
            oldJti: next,
            newJti: jti(),
            graceMs: 0,
          }),
        ).toBe('missing');
      }),
    );

    if (backend.runsLate)
      it(
        'a rotation that runs long after its now (queued in a frozen backend) is stamped and judged when it runs',
        withStore(async (store) => {
          const u = user();
          // Sent a minute ago, run only now: the backend was frozen in between.
          const sent = Date.now() - 60_000;
          const s = session(sent - 1000);
          await store.create(u, s, 10);
          const next = jti();
          const base = { sessionId: s.sessionId, expiresAt: sent + HOUR, graceMs: 5000 };
          expect(await store.rotate(u, { ...base, now: sent, oldJti: s.jti, newJti: next })).toBe(
            'rotated',
          );
          const ran = Date.now();
          expect((await store.get(u, s.sessionId, ran))?.lastUsedAt).toBeGreaterThan(ran - 5000);
          // The client's retries: one sent 30 s into the freeze (run with the first), one sent now.
          for (const now of [sent + 30_000, Date.now()])
            expect(await store.rotate(u, { ...base, now, oldJti: s.jti, newJti: jti() })).toBe(
              'superseded',
            );
          expect((await store.get(u, s.sessionId, Date.now()))?.jti).toBe(next);
          // Reuse is still theft once the grace window after the rotation's run has passed.
          expect(
            await store.rotate(u, { ...base, now: ran + 6000, oldJti: s.jti, newJti: jti() }),
          ).toBe('reused');
          expect(await store.isLive(u, s.sessionId, ran + 6000)).toBe(false);

          // Several at once (a store may send them as one command): each stamped when it ran.
          const users = [user(), user(), user()];
          const families = users.map(() => session(sent - 1000));
          await Promise.all(users.map((v, i) => store.create(v, families[i]!, 10)));
          const rotate = (now: number) =>
            Promise.all(
              users.map((v, i) =>
                store.rotate(v, {
                  ...base,
                  sessionId: families[i]!.sessionId,
                  now,
                  oldJti: families[i]!.jti,
                  newJti: jti(),
                }),
              ),
            );
          expect(await rotate(sent)).toEqual(['rotated', 'rotated', 'rotated']);
          expect(await rotate(sent + 30_000)).toEqual(['superseded', 'superseded', 'superseded']);
        }),
      );

    it(
      'within the grace period the previous jti is superseded, after it reused',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const s = session(now);
        await store.create(u, s, 10);
        const next = jti();
        const base = { sessionId: s.sessionId, expiresAt: now + HOUR, graceMs: 5000 };
        expect(await store.rotate(u, { ...base, now, oldJti: s.jti, newJti: next })).toBe(
          'rotated',
        );
        expect(
          await store.rotate(u, { ...base, now: now + 4000, oldJti: s.jti, newJti: jti() }),
        ).toBe('superseded');
        expect((await store.get(u, s.sessionId, now + 4000))?.jti).toBe(next);
        expect(
          await store.rotate(u, { ...base, now: now + 6000, oldJti: s.jti, newJti: jti() }),
        ).toBe('reused');
        expect(await store.isLive(u, s.sessionId, now + 6000)).toBe(false);
      }),
    );

    it(
      'with successor ids the replaced jti is superseded within the grace period, then reused; an older one is reused',
      withStore(async (store) => {
        // `successor`: every rotation of one jti names the same new one (the redis strategy's
        // derived ids), so a store may recognise a concurrent one by its new jti being live.
        const u = user();
        const now = Date.now();
        const rotate = (sessionId: string, at: number, oldJti: string, newJti: string) =>
          store.rotate(u, {
            sessionId,
            now: now + at,
            oldJti,
            newJti,
            expiresAt: now + HOUR,
            graceMs: 5000,
            successor: true,
          });
        const s = session(now);
        await store.create(u, s, 10);
        const [next, after] = [jti(), jti()];
        expect(await rotate(s.sessionId, 0, s.jti, next)).toBe('rotated');
        expect(await rotate(s.sessionId, 4000, s.jti, next)).toBe('superseded');
        expect((await store.get(u, s.sessionId, now + 4000))?.jti).toBe(next);
        // One rotation further on, the first jti is two behind: theft, not a second tab.
        expect(await rotate(s.sessionId, 4100, next, after)).toBe('rotated');
        expect(await rotate(s.sessionId, 4200, s.jti, next)).toBe('reused');
        expect(await store.isLive(u, s.sessionId, now + 4200)).toBe(false);
        // After the grace period the replaced jti is reuse.
        const t = session(now);
        await store.create(u, t, 10);
        expect(await rotate(t.sessionId, 0, t.jti, next)).toBe('rotated');
        expect(await rotate(t.sessionId, 6500, t.jti, next)).toBe('reused');
        expect(await store.isLive(u, t.sessionId, now + 6500)).toBe(false);
      }),
    );

    it(
      'rotate with newJti === oldJti slides the expiry (a touch) and keeps the jti',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        // Read after the first expiry, before the slid one (at either resolution).
        const s = session(now, 2000);
        await store.create(u, s, 10);
        expect(
          await store.rotate(u, {
            sessionId: s.sessionId,
            oldJti: s.jti,
            newJti: s.jti,
            now: now + 900,
            expiresAt: now + 3900,
            graceMs: 0,
          }),
        ).toBe('rotated');
        const record = await store.get(u, s.sessionId, now + 2500);
        expect(record).toMatchObject({
          jti: s.jti,
          createdAt: now,
          lastUsedAt: use(now + 900),
          expiresAt: expiry(now + 3900),
        });
      }),
    );

    it(
      'of 50 concurrent rotations of one jti exactly one wins; without grace the rest end the session',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const s = session(now);
        await store.create(u, s, 10);
        const results = await Promise.all(
          Array.from({ length: 50 }, () =>
            store.rotate(u, {
              sessionId: s.sessionId,
              oldJti: s.jti,
              newJti: jti(),
              now,
              expiresAt: now + HOUR,
              graceMs: 0,
            }),
          ),
        );
        expect(results.filter((r) => r === 'rotated')).toHaveLength(1);
        // One loser ends the session (reused); the rest find it gone (missing), so theft is
        // reported once.
        expect(results.filter((r) => r === 'reused')).toHaveLength(1);
        expect(
          results.filter((r) => r === 'rotated' || r === 'reused' || r === 'missing'),
        ).toHaveLength(50);
        expect(await store.isLive(u, s.sessionId, now)).toBe(false);
      }),
    );

    it(
      'of 50 concurrent rotations within a grace period one wins and the rest are superseded',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const s = session(now);
        await store.create(u, s, 10);
        const news = Array.from({ length: 50 }, () => jti());
        const results = await Promise.all(
          news.map((newJti) =>
            store.rotate(u, {
              sessionId: s.sessionId,
              oldJti: s.jti,
              newJti,
              now,
              expiresAt: now + HOUR,
              graceMs: 10_000,
            }),
          ),
        );
        expect(results.filter((r) => r === 'rotated')).toHaveLength(1);
        expect(results.filter((r) => r === 'superseded')).toHaveLength(49);
        const winner = news[results.indexOf('rotated')];
        expect((await store.get(u, s.sessionId, now))?.jti).toBe(winner);
      }),
    );

    it(
      'a logout racing a refresh leaves the session ended, whichever runs first',
      withStore(async (store) => {
        for (let round = 0; round < 10; round++) {
          const u = user();
          const now = Date.now();
          const s = session(now);
          await store.create(u, s, 10);
          const [rotated] = await Promise.all([
            store.rotate(u, {
              sessionId: s.sessionId,
              oldJti: s.jti,
              newJti: jti(),
              now,
              expiresAt: now + HOUR,
              graceMs: 0,
            }),
            store.revoke(u, s.sessionId),
          ]);
          expect(['rotated', 'missing']).toContain(rotated);
          expect(await store.isLive(u, s.sessionId, now)).toBe(false);
          expect(await store.list(u, now)).toEqual([]);
        }
      }),
    );

    it(
      'the per-user cap ends the sessions that expire first',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const made = [];
        for (let i = 0; i < 5; i++) {
          const s = session(now + i, HOUR);
          made.push(s);
          await store.create(u, s, 3);
        }
        const live = (await store.list(u, now + 10)).map((r) => r.sessionId).sort();
        expect(live).toEqual(
          made
            .slice(2)
            .map((s) => s.sessionId)
            .sort(),
        );
      }),
    );

    it(
      'a login at the cap that expires before the others (a shorter lifetime) ends the others that expire first, never itself',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const older = [4, 3, 2].map((hours, i) => session(now + i, hours * HOUR));
        for (const s of older) await store.create(u, s, 3);
        const short = session(now + 10, 60_000);
        await store.create(u, short, 3);
        expect(await store.isLive(u, short.sessionId, now + 20)).toBe(true);
        const live = (await store.list(u, now + 20)).map((r) => r.sessionId).sort();
        // The one of the others that expired first (2 hours) went.
        expect(live).toEqual([older[0]!.sessionId, older[1]!.sessionId, short.sessionId].sort());
      }),
    );

    it(
      'logins that expire at the same time (tokens count whole seconds): the cap ends the oldest, never the newest',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const expiresAt = Math.ceil((now + HOUR) / 1000) * 1000;
        const made: string[] = [];
        for (let i = 0; i < 6; i++) {
          const s = { ...session(now + i), expiresAt };
          made.push(s.sessionId);
          await store.create(u, s, 2);
          expect(await store.isLive(u, s.sessionId, now + i)).toBe(true);
        }
        const live = (await store.list(u, now + 10)).map((r) => r.sessionId);
        expect(live).toEqual(made.slice(4));
      }),
    );

    it(
      'the cap holds under 20 concurrent logins of one user',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.create(u, session(now + i, HOUR), 5)),
        );
        expect(await store.list(u, now + 100)).toHaveLength(5);
      }),
    );

    it(
      'with a cap of 0 nothing is ended; list is oldest first',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const made = [];
        for (let i = 0; i < 4; i++) {
          const s = session(now + i);
          made.push(s.sessionId);
          await store.create(u, s, 0);
        }
        expect((await store.list(u, now + 10)).map((r) => r.sessionId)).toEqual(made);
      }),
    );

    it(
      'revoke ends one session (true once); revokeAll ends the rest and counts the live ones',
      withStore(async (store) => {
        const u = user();
        const now = Date.now();
        const [a, b, c] = [session(now), session(now + 1), session(now + 2, 5)];
        for (const s of [a, b, c]) await store.create(u, s, 10);
        expect(await store.revoke(u, a.sessionId)).toBe(true);
        expect(await store.revoke(u, a.sessionId)).toBe(false);
        expect(await store.isLive(u, b.sessionId, now + 10)).toBe(true);
        // c has expired by now + 10: it is not counted.
        expect(await store.revokeAll(u, now + 10)).toBe(1);
        expect(await store.list(u, now)).toEqual([]);
        expect(await store.revokeAll(u, now)).toBe(0);
      }),
    );

    it(
      'revoke of an expired session answers false, alone or beside a live one of the user',
      withStore(async (store) => {
        const [u, alone] = [user(), user()];
        const now = Date.now();
        const live = session(now, HOUR);
        const dead = session(now, 1000);
        const only = session(now, 1000);
        await store.create(u, live, 10);
        await store.create(u, dead, 10);
        await store.create(alone, only, 10);
        // revoke reads the time from Date: 2 s on, the short sessions have expired (a backend's
        // own clock has not moved, so nothing has removed them yet).
        vi.useFakeTimers({ toFake: ['Date'] });
        try {
          vi.setSystemTime(now + 2000);
          expect(await store.revoke(u, dead.sessionId)).toBe(false);
          expect(await store.revoke(alone, only.sessionId)).toBe(false);
          expect(await store.isLive(u, live.sessionId, now + 2000)).toBe(true);
          expect(await store.revoke(u, live.sessionId)).toBe(true);
          expect(await store.list(u, now + 2000)).toEqual([]);
        } finally {
          vi.useRealTimers();
        }
      }),
    );

    if (backend.prunes) {
      it(
        'prune deletes expired sessions of every user and keeps live ones',
        withStore(async (store) => {
          const [a, b] = [user(), user()];
          const now = Date.now();
          const dead = session(now, 10);
          const live = session(now, HOUR);
          await store.create(a, dead, 10);
          await store.create(b, live, 10);
          expect(await store.prune!(now + 20)).toBeGreaterThanOrEqual(1);
          expect(await store.list(a, now)).toEqual([]);
          expect(await store.isLive(b, live.sessionId, now + 20)).toBe(true);
        }),
      );
    }
  });
}

/** The library's own races and theft detection, through `createAuth({ store })`. */
/**
 * The Auth-level contract: rotation, reuse, grace and lifetimes through a real Auth on the store.
 * `makeAuth` builds one on the backend with strict reuse detection (`refreshGracePeriod: 0`)
 * unless `options` say otherwise.
 */
export function authOnStoreContract(
  name: string,
  makeAuth: (options?: Partial<AuthOptions>) => Auth,
): void {
  describe(`refresh rotation on ${name}`, () => {
    it('50 concurrent refreshes of one token: one pair, the family revoked', async () => {
      const auth = makeAuth();
      try {
        const pair = await auth.generateTokens({ id: user() });
        const outcomes = await Promise.allSettled(
          Array.from({ length: 50 }, () => auth.refreshTokens(pair.refresh_token)),
        );
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const o of outcomes) {
          if (o.status === 'rejected')
            expect(['refresh_reused', 'token_revoked']).toContain(
              (o.reason as { code: string }).code,
            );
        }
        const winner = (won[0] as PromiseFulfilledResult<{ refresh_token: string }>).value;
        expect(await auth.checkRefreshToken(winner.refresh_token)).toBe(false);
      } finally {
        await auth.close();
      }
    });

    it('three concurrent refreshes of one token, 30 times: one pair, one refresh_reused each time', async () => {
      const auth = makeAuth();
      const reused: string[] = [];
      auth.on('refresh_reused', ({ sessionId }) => reused.push(sessionId));
      try {
        const sessions: string[] = [];
        for (let round = 0; round < 30; round++) {
          const pair = await auth.generateTokens({ id: user() });
          sessions.push(payloadOf(pair.access_token).sid as string);
          const outcomes = await Promise.allSettled(
            [1, 2, 3].map(() => auth.refreshTokens(pair.refresh_token)),
          );
          const codes = outcomes.map((o) =>
            o.status === 'fulfilled' ? 'ok' : (o.reason as { code: string }).code,
          );
          expect(codes.sort()).toEqual(['ok', 'refresh_reused', 'token_revoked']);
        }
        expect(reused).toEqual(sessions);
      } finally {
        await auth.close();
      }
    });

    it('revokeSession of an expired session answers false and emits no logout, alone or beside a live one', async () => {
      const auth = makeAuth({ accessTokenTtl: 1, refreshTokenTtl: 2, absoluteSessionTtl: 2 });
      const logouts: string[] = [];
      auth.on('logout', ({ sessionId }) => logouts.push(sessionId));
      const sid = (pair: { access_token: string }) => payloadOf(pair.access_token).sid as string;
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        // 100 ms into a second, so the whole-second ends are known: the first two logins end
        // at t0 + 1900, the third at t0 + 2900, and no login prunes another's session.
        const t0 = Math.ceil(Date.now() / 1000) * 1000 + 100;
        vi.setSystemTime(t0);
        const [u, alone] = [user(), user()];
        const first = await auth.generateTokens({ id: u });
        const only = await auth.generateTokens({ id: alone });
        vi.setSystemTime(t0 + 1000);
        const second = await auth.generateTokens({ id: u });
        vi.setSystemTime(t0 + 2100);
        expect(await auth.revokeSession(u, sid(first))).toBe(false);
        expect(await auth.revokeSession(alone, sid(only))).toBe(false);
        expect(logouts).toEqual([]);
        expect(await auth.revokeSession(u, sid(second))).toBe(true);
        expect(logouts).toEqual([sid(second)]);
      } finally {
        vi.useRealTimers();
        await auth.close();
      }
    });

    it('a session id no session can have (a NUL, a control character, a lone surrogate) finds nothing, with no store call', async () => {
      const auth = makeAuth();
      const outages: string[] = [];
      auth.on('store_unavailable', ({ operation }) => outages.push(operation));
      try {
        const u = user();
        const pair = await auth.generateTokens({ id: u });
        // PostgreSQL cannot hold a NUL: asked, it failed the call, read as an outage (a 503).
        for (const bad of ['a\u0000', '\u0000', 'a\u001b[2J', 'a\u007f', 'a\uD800']) {
          expect(await auth.revokeSession(u, bad)).toBe(false);
          await expect(auth.createAccessToken({ id: u }, { sessionId: bad })).rejects.toThrow(
            /`sessionId` must be a session id/,
          );
        }
        expect(outages).toEqual([]);
        expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
      } finally {
        await auth.close();
      }
    });

    it('50 concurrent refreshes within a grace period: all get working tokens of one live chain', async () => {
      const auth = makeAuth({ refreshGracePeriod: 10 });
      try {
        const u = user();
        const pair = await auth.generateTokens({ id: u });
        const pairs = await Promise.all(
          Array.from({ length: 50 }, () => auth.refreshTokens(pair.refresh_token)),
        );
        const jtis = new Set(pairs.map((p) => payloadOf(p.refresh_token).jti));
        expect(jtis.size).toBe(1);
        const strategy = auth.strategies.get(auth.strategies.defaultStrategyName);
        for (const p of pairs) {
          expect(await auth.checkRefreshToken(p.refresh_token)).toBe(true);
          await strategy.readToken(p.access_token, { checkSession: true });
        }
        expect(await auth.listSessions(u)).toHaveLength(1);
        // The chain goes on from any of them; then all the others are its previous id.
        const next = await auth.refreshTokens(pairs[7]!.refresh_token);
        expect(await auth.checkRefreshToken(next.refresh_token)).toBe(true);
        expect(await auth.checkRefreshToken(pairs[0]!.refresh_token)).toBe(false);
      } finally {
        await auth.close();
      }
    });

    it('no refresh extends a session past absoluteSessionTtl; listSessions shows the earlier end', async () => {
      const auth = makeAuth({
        accessTokenTtl: 1,
        refreshTokenTtl: 2,
        absoluteSessionTtl: 3,
        leeway: 0,
      });
      try {
        const u = user();
        let pair = await auth.generateTokens({ id: u });
        const authTime = payloadOf(pair.access_token).auth_time as number;
        const absoluteEnd = (authTime + 3) * 1000;
        // Right after login the idle timeout is the earlier end: the tokens' exp, to the second,
        // on every store (the session ends when its tokens do).
        const [first] = await auth.listSessions(u);
        expect(first!.expiresAt.getTime()).toBe(
          (payloadOf(pair.refresh_token).exp as number) * 1000,
        );
        expect(first!.expiresAt.getTime()).toBe(
          Math.floor((first!.createdAt.getTime() + 2000) / 1000) * 1000,
        );
        let failure: { code?: string } | undefined;
        let lastEnd = 0;
        while (failure === undefined && Date.now() < absoluteEnd + 3000) {
          await sleep(300);
          try {
            pair = await auth.refreshTokens(pair.refresh_token);
          } catch (error) {
            failure = error as { code?: string };
            break;
          }
          for (const token of [pair.access_token, pair.refresh_token]) {
            const claims = payloadOf(token);
            expect(claims.auth_time).toBe(authTime);
            expect(claims.exp as number).toBeLessThanOrEqual(authTime + 3);
          }
          const [listed] = await auth.listSessions(u);
          if (listed) {
            lastEnd = listed.expiresAt.getTime();
            expect(lastEnd).toBeLessThanOrEqual(absoluteEnd);
          }
        }
        // Late refreshes hit the absolute end exactly; then the session is over, on every store.
        expect(lastEnd).toBe(absoluteEnd);
        expect(['token_expired', 'token_revoked']).toContain(failure?.code);
        expect(Date.now()).toBeLessThan(absoluteEnd + 1500);
        expect(await auth.listSessions(u)).toEqual([]);
        expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(false);
      } finally {
        await auth.close();
      }
    });

    it('reusing a rotated refresh token revokes the family', async () => {
      const auth = makeAuth();
      try {
        const first = await auth.generateTokens({ id: user() });
        const second = await auth.refreshTokens(first.refresh_token);
        await expect(auth.refreshTokens(first.refresh_token)).rejects.toMatchObject({
          code: 'refresh_reused',
        });
        expect(await auth.checkRefreshToken(second.refresh_token)).toBe(false);
        await expect(auth.refreshTokens(second.refresh_token)).rejects.toMatchObject({
          code: 'token_revoked',
        });
        const strategy = auth.strategies.get(auth.strategies.defaultStrategyName);
        await expect(
          Promise.resolve().then(() =>
            strategy.readToken(second.access_token, { checkSession: true }),
          ),
        ).rejects.toMatchObject({ code: 'token_revoked' });
      } finally {
        await auth.close();
      }
    });

    it('a logout racing a refresh: no token of the family works afterwards', async () => {
      const auth = makeAuth();
      try {
        for (let round = 0; round < 10; round++) {
          const pair = await auth.generateTokens({ id: user() });
          const [refreshed] = await Promise.allSettled([
            auth.refreshTokens(pair.refresh_token),
            auth.invalidateRefreshToken(pair.refresh_token),
          ]);
          expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(false);
          if (refreshed.status === 'fulfilled')
            expect(await auth.checkRefreshToken(refreshed.value.refresh_token)).toBe(false);
        }
      } finally {
        await auth.close();
      }
    });

    it('revokeAllSessions ends every login and lists none', async () => {
      const auth = makeAuth();
      try {
        const u = { id: user() };
        const pairs = await Promise.all([1, 2, 3].map(() => auth.generateTokens(u)));
        expect(await auth.listSessions(u.id)).toHaveLength(3);
        expect(await auth.revokeAllSessions(u.id)).toBe(3);
        for (const p of pairs) expect(await auth.checkRefreshToken(p.refresh_token)).toBe(false);
        expect(await auth.listSessions(u.id)).toEqual([]);
      } finally {
        await auth.close();
      }
    });
  });
}
