import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Auth, AuthOptions, SessionStore } from '../../src/index.js';
import { keptTimes } from './store-contract.js';

/**
 * The opaque `session` strategy on one store. Time moves by a faked `Date` (the stores take `now`
 * from it), never by sleeping; timers and I/O stay real.
 */
export function sessionStrategyContract(
  name: string,
  make: (options?: Partial<AuthOptions>) => Auth,
  open: () => SessionStore,
  timeResolution?: number,
): void {
  const { expiry, use } = keptTimes(timeResolution);
  /** A login's expires_in for an idle lifetime of `seconds`: a second less may be kept only by a store that keeps seconds. */
  const promised = (seconds: number) =>
    timeResolution === 1000 ? [seconds - 1, seconds] : [seconds];
  describe(`session strategy on ${name}`, () => {
    let auth: Auth | undefined;
    afterEach(async () => {
      vi.useRealTimers();
      await auth?.close();
      auth = undefined;
    });
    const user = () => ({ id: `s-${randomUUID()}` });
    /** Idle 60 s, absolute 150 s (refreshTokenTtl, shorter than absoluteSessionTtl). */
    const sliding = () =>
      make({ strategy: 'session', sessionIdleTtl: 60, accessTokenTtl: 10, refreshTokenTtl: 150 });

    /** Waits until the store shows the session used at `at` (the sliding write is not awaited by reads). */
    async function usedAt(userId: string | number, at: number): Promise<void> {
      for (let i = 0; i < 100; i++) {
        const [s] = await auth!.listSessions(userId);
        if (s && s.lastUsedAt.getTime() === use(at)) return;
        await sleep(20);
      }
      throw new Error(`the session was not slid at ${at}`);
    }

    it('login returns an opaque token of 256 random bits whose hash alone is stored', async () => {
      auth = make({ strategy: 'session', sessionIdleTtl: 600 });
      const u = user();
      const pair = await auth.generateTokens(u);
      expect(pair.access_token).toBe(pair.refresh_token);
      // A store that keeps whole seconds rounds the expiry down: a second less may be promised.
      expect(promised(600)).toContain(pair.expires_in);
      const [encodedUser, sid, secret] = pair.access_token.split('.') as [string, string, string];
      expect(Buffer.from(encodedUser, 'base64url').toString()).toBe(u.id);
      expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
      const store = open();
      try {
        const dump = JSON.stringify(await store.list(u.id, Date.now()));
        expect(dump).toContain(sid);
        expect(dump).not.toContain(secret);
        expect(dump).not.toContain(pair.access_token);
      } finally {
        await store.close();
      }
      // Two logins never share a secret.
      const other = await auth.generateTokens(u);
      expect(other.access_token.split('.')[2]).not.toBe(secret);
    });

    it('requireAuth checks every token in the store: logout, revokeSession and revokeAllSessions end it', async () => {
      auth = make({ strategy: 'session' });
      const u = user();
      const [a, b, c] = await Promise.all([1, 2, 3].map(() => auth!.generateTokens(u)));
      const data = await auth.getData(a!.access_token);
      expect(data).toMatchObject({ sub: u.id, token_use: 'access' });
      expect(await auth.listSessions(u.id)).toHaveLength(3);
      await auth.invalidateRefreshToken(a!.refresh_token);
      await expect(auth.getData(a!.access_token)).rejects.toMatchObject({ code: 'token_revoked' });
      const sidB = (await auth.getData(b!.access_token)).sid!;
      expect(await auth.revokeSession(u.id, sidB)).toBe(true);
      await expect(auth.getData(b!.access_token)).rejects.toMatchObject({ code: 'token_revoked' });
      expect(await auth.revokeAllSessions(u.id)).toBe(1);
      await expect(auth.getData(c!.access_token)).rejects.toMatchObject({ code: 'token_revoked' });
    });

    it('a token with a wrong secret, a malformed token or a JWT is refused', async () => {
      auth = make({ strategy: 'session' });
      const { access_token: token } = await auth.generateTokens(user());
      const [u, sid, secret] = token.split('.') as [string, string, string];
      const flipped = `${u}.${sid}.${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
      await expect(auth.getData(flipped)).rejects.toMatchObject({ status: 401 });
      // A logout with a wrong secret ends nothing.
      await auth.invalidateRefreshToken(flipped);
      expect(await auth.checkRefreshToken(token)).toBe(true);
      expect(await auth.checkRefreshToken(flipped)).toBe(false);
      for (const bad of ['', 'x', `${u}.${sid}`, `${token}.x`, `${u}=.${sid}.${secret}`, 'a.b.c'])
        await expect(auth.getData(bad)).rejects.toMatchObject({ code: 'token_invalid' });
    });

    it('a token whose user part is a control character is invalid before any store call, never a 503', async () => {
      auth = make({ strategy: 'session' });
      const outages: unknown[] = [];
      auth.on('store_unavailable', (payload) => outages.push(payload));
      const secret = 'B'.repeat(43);
      // "AA" decodes to U+0000, which PostgreSQL text cannot hold: anyone can send it.
      for (const forged of [
        `AA.AAAAAAAAAAAAAAAA.${secret}`,
        `${Buffer.from('a\u0000b').toString('base64url')}.AAAAAAAAAAAAAAAA.${secret}`,
        `${Buffer.from('\u001f').toString('base64url')}.AAAAAAAAAAAAAAAA.${secret}`,
        `${Buffer.from('x\ny').toString('base64url')}.AAAAAAAAAAAAAAAA.${secret}`,
      ]) {
        await expect(auth.getData(forged)).rejects.toMatchObject({ code: 'token_invalid' });
        expect(await auth.checkRefreshToken(forged)).toBe(false);
        await expect(auth.refreshTokens(forged)).rejects.toMatchObject({ code: 'token_invalid' });
        await expect(auth.invalidateRefreshToken(forged)).rejects.toMatchObject({
          code: 'token_invalid',
        });
      }
      // Nor can such an id be given: the same refusal as any other bad user id.
      await expect(auth.generateTokens({ id: '\u0000' })).rejects.toBeInstanceOf(TypeError);
      await expect(auth.listSessions('\u0000')).rejects.toBeInstanceOf(TypeError);
      expect(outages).toEqual([]);
    });

    it('idle expiry slides on use, at most one write per interval, up to the absolute cap', async () => {
      // Idle 60 s, absolute 150 s: writes at most every 6 s.
      auth = sliding();
      vi.useFakeTimers({ toFake: ['Date'] });
      const t0 = Date.now();
      const u = user();
      const { access_token: token } = await auth.generateTokens(u);
      // Used again within the throttle interval: no write.
      vi.setSystemTime(t0 + 3000);
      await auth.getData(token);
      await sleep(100);
      expect((await auth.listSessions(u.id))[0]!.lastUsedAt.getTime()).toBe(t0);
      // Past it: the idle expiry moves to now + 60 s.
      vi.setSystemTime(t0 + 40_000);
      await auth.getData(token);
      await usedAt(u.id, t0 + 40_000);
      vi.setSystemTime(t0 + 90_000); // past the first idle expiry (t0 + 60 s), within the slid one
      await auth.getData(token);
      await usedAt(u.id, t0 + 90_000);
      // That slide already reached the cap: later use has nothing left to extend.
      expect((await auth.listSessions(u.id))[0]!.expiresAt.getTime()).toBe(expiry(t0 + 150_000));
      vi.setSystemTime(t0 + 140_000);
      await auth.getData(token);
      // No write either (the slide is not awaited: give one a moment to land).
      await sleep(100);
      expect((await auth.listSessions(u.id))[0]!.lastUsedAt.getTime()).toBe(use(t0 + 90_000));
      // The absolute cap: used 10 s ago, yet over.
      vi.setSystemTime(t0 + 150_001);
      await expect(auth.getData(token)).rejects.toMatchObject({ code: 'token_revoked' });
    });

    it('expires_in is what the session lives unused: the idle lifetime, less near the absolute end', async () => {
      // Idle 60 s, absolute 150 s.
      auth = sliding();
      vi.useFakeTimers({ toFake: ['Date'] });
      const t0 = Date.now();
      const u = user();
      const pair = await auth.generateTokens(u);
      // Never more than the store keeps the session, at login as on each refresh below.
      expect(promised(60)).toContain(pair.expires_in);
      const [started] = await auth.listSessions(u.id);
      expect(t0 + pair.expires_in * 1000).toBeLessThanOrEqual(started!.expiresAt.getTime());
      /** A refresh at t0 + `at` ms: its expires_in, never more than the store keeps the session. */
      const refreshAt = async (at: number) => {
        vi.setSystemTime(t0 + at);
        const { expires_in: seconds } = await auth!.refreshTokens(pair.refresh_token);
        const [session] = await auth!.listSessions(u.id);
        expect(t0 + at + seconds * 1000).toBeLessThanOrEqual(session!.expiresAt.getTime());
        return seconds;
      };
      // A store that keeps whole seconds rounds the slid expiry down: a second less may be left.
      const within = (seconds: number, expected: number) => {
        expect(seconds).toBeGreaterThanOrEqual(expected - 1);
        expect(seconds).toBeLessThanOrEqual(expected);
      };
      within(await refreshAt(30_000), 60);
      within(await refreshAt(80_000), 60);
      // Slid to the cap: 30 s left.
      within(await refreshAt(120_000), 30);
      // At the cap, nothing to slide: what is left of it.
      within(await refreshAt(140_000), 10);
    });

    it('a session unused for its idle lifetime ends; refreshTokens slides it and returns the same token', async () => {
      auth = make({ strategy: 'session', sessionIdleTtl: 60 });
      vi.useFakeTimers({ toFake: ['Date'] });
      const t0 = Date.now();
      const u = user();
      const [kept, idle] = await Promise.all([auth.generateTokens(u), auth.generateTokens(u)]);
      vi.setSystemTime(t0 + 50_000);
      const refreshed = await auth.refreshTokens(kept.refresh_token);
      expect(refreshed.access_token).toBe(kept.access_token);
      vi.setSystemTime(t0 + 61_000);
      await expect(auth.getData(idle.access_token)).rejects.toMatchObject({
        code: 'token_revoked',
      });
      expect((await auth.getData(kept.access_token)).sub).toBe(u.id);
      await expect(auth.refreshTokens(idle.refresh_token)).rejects.toMatchObject({
        code: 'token_revoked',
      });
    });

    it('is selectable per middleware next to the default strategy', async () => {
      auth = make();
      const u = user();
      const session = await auth.generateTokens(u, { strategy: 'session' });
      const jwtPair = await auth.generateTokens(u);
      const sessionReader = auth.strategies.get('session');
      expect(
        (await sessionReader.readToken(session.access_token, { checkSession: true })).sub,
      ).toBe(u.id);
      await expect(auth.getData(session.access_token)).rejects.toMatchObject({
        code: 'token_invalid',
      });
      expect((await auth.getData(jwtPair.access_token)).sub).toBe(u.id);
      // Both kinds of login are sessions of the one user.
      expect(await auth.listSessions(u.id)).toHaveLength(2);
    });
  });
}
