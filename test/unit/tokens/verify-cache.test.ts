import { afterEach, describe, expect, it, vi } from 'vitest';
import { createKeyRing, type RingKey } from '../../../src/keys/key-ring.js';
import { TokenService } from '../../../src/tokens/token-service.js';
import { VerifyCache } from '../../../src/tokens/verify-cache.js';
import { SECRET } from '../../helpers/forge.js';

function service(verifyCacheSize: number, leeway = 0): TokenService {
  return new TokenService({
    ring: createKeyRing({ secret: SECRET }),
    accessTokenTtl: 60,
    refreshTokenTtl: 3600,
    issuer: undefined,
    audience: undefined,
    leeway,
    verifyCacheSize,
  });
}

/** The service's cache, to observe what it holds (private in the type, plain at run time). */
const cacheOf = (tokens: TokenService) =>
  (tokens as unknown as { accessCache: VerifyCache<object> | undefined }).accessCache;

afterEach(() => {
  vi.useRealTimers();
});

describe('the verified-token cache', () => {
  it('answers a repeated token from the cache with the same claims, a fresh object each time', () => {
    const tokens = service(10);
    const { token } = tokens.sign('access', { sub: '1', sid: 's', roles: ['admin'] });
    const first = tokens.verify(token, 'access');
    expect(cacheOf(tokens)!.size).toBe(1);
    const second = tokens.verify(token, 'access');
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    // One request changing its own ctx.state.user does not leak into the next one.
    (second as unknown as Record<string, unknown>).sub = 'someone-else';
    expect(tokens.verify(token, 'access').sub).toBe('1');
    // Nested claims are shared, so they are frozen rather than copied.
    expect(Object.isFrozen((first as unknown as Record<string, unknown>).roles)).toBe(true);
  });

  it('never serves a token past its exp, even though the full check would allow the leeway', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
    const tokens = service(10, 0);
    const { token, exp } = tokens.sign('access', { sub: '1', sid: 's' });
    tokens.verify(token, 'access');
    vi.setSystemTime(exp * 1000 - 1);
    expect(tokens.verify(token, 'access').sub).toBe('1');
    vi.setSystemTime(exp * 1000);
    expect(() => tokens.verify(token, 'access')).toThrow(
      expect.objectContaining({ code: 'token_expired' }),
    );
    expect(cacheOf(tokens)!.size).toBe(0);
  });

  it('keeps refresh tokens and refused tokens out', () => {
    const tokens = service(10);
    const refresh = tokens.sign('refresh', { sub: '1', sid: 's', jti: 'j', auth_time: 1 }).token;
    tokens.verify(refresh, 'refresh');
    expect(() => tokens.verify(refresh, 'access')).toThrow();
    const access = tokens.sign('access', { sub: '1', sid: 's' }).token;
    expect(() => tokens.verify(`${access}x`, 'access')).toThrow();
    expect(cacheOf(tokens)!.size).toBe(0);
    // A cached access token is still refused where a refresh token is expected.
    tokens.verify(access, 'access');
    expect(() => tokens.verify(access, 'refresh')).toThrow(
      expect.objectContaining({ code: 'token_invalid' }),
    );
  });

  it('is bounded, dropping the least recently used token first', () => {
    const tokens = service(4);
    const signed = Array.from(
      { length: 5 },
      (_, i) => tokens.sign('access', { sub: String(i), sid: 's' }).token,
    );
    for (const token of signed.slice(0, 4)) tokens.verify(token, 'access');
    tokens.verify(signed[0]!, 'access'); // 0 is now the most recently used; 1 the least
    tokens.verify(signed[4]!, 'access');
    const cache = cacheOf(tokens)!;
    expect(cache.size).toBeLessThanOrEqual(4);
    expect(cache.has(signed[0]!)).toBe(true);
    expect(cache.has(signed[4]!)).toBe(true);
    expect(cache.has(signed[1]!)).toBe(false);
  });

  it('stays bounded and cheap when every request misses (more tokens than it holds)', () => {
    const tokens = service(100);
    for (let i = 0; i < 1000; i++) {
      const { token } = tokens.sign('access', { sub: String(i), sid: 's' });
      expect(tokens.verify(token, 'access').sub).toBe(String(i));
      expect(cacheOf(tokens)!.size).toBeLessThanOrEqual(100);
    }
  });

  it('is off with verifyCacheSize: 0', () => {
    const tokens = service(0);
    const { token } = tokens.sign('access', { sub: '1', sid: 's' });
    expect(tokens.verify(token, 'access').sub).toBe('1');
    expect(cacheOf(tokens)).toBeUndefined();
  });

  it('misses when the verifying key is no longer the one the ring finds', () => {
    const cache = new VerifyCache<{ sub: string }>(10);
    const key = { kid: 'k1' } as RingKey;
    cache.set('t', { sub: '1' }, Date.now() / 1000 + 60, key, 'k1', 'HS256');
    expect(cache.get('t', Date.now(), () => key)).toEqual({ sub: '1' });
    expect(cache.get('t', Date.now(), () => undefined)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('serves only the exact token: a forged payload under a cached token’s signature is verified, and refused', () => {
    const tokens = service(10);
    const { token } = tokens.sign('access', { sub: '1', sid: 's' });
    tokens.verify(token, 'access');
    const [header, , signature] = token.split('.');
    const forged = `${header}.${Buffer.from(JSON.stringify({ sub: 'admin', sid: 's', token_use: 'access', exp: 4e9 })).toString('base64url')}.${signature}`;
    expect(() => tokens.verify(forged, 'access')).toThrow(
      expect.objectContaining({ code: 'token_invalid' }),
    );
    // The real token's entry is still there and still answers.
    expect(cacheOf(tokens)!.size).toBe(1);
    expect(tokens.verify(token, 'access').sub).toBe('1');
  });

  it('is per instance: another secret never sees this one’s tokens', () => {
    const a = service(10);
    const b = new TokenService({
      ring: createKeyRing({ secret: 'another-secret-of-at-least-32-bytes!' }),
      accessTokenTtl: 60,
      refreshTokenTtl: 3600,
      issuer: undefined,
      audience: undefined,
      leeway: 0,
      verifyCacheSize: 10,
    });
    const { token } = a.sign('access', { sub: '1', sid: 's' });
    a.verify(token, 'access');
    expect(() => b.verify(token, 'access')).toThrow(
      expect.objectContaining({ code: 'token_invalid' }),
    );
  });
});
