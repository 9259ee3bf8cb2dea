import { once } from 'node:events';
import { setImmediate as tick } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthConfigError, createAuth } from '../../../src/index.js';
import { TokenCookies } from '../../../src/middleware/cookies.js';
import { readCookie } from '../../../src/middleware/credentials.js';
import { SECRET } from '../../helpers/forge.js';

function optionError(options: Record<string, unknown>): AuthConfigError {
  try {
    createAuth({ secret: SECRET, ...options } as never);
  } catch (error) {
    expect(error).toBeInstanceOf(AuthConfigError);
    return error as AuthConfigError;
  }
  throw new Error('expected createAuth to throw');
}

describe('web options', () => {
  it('are validated at start-up, naming the option to change', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ tokenDelivery: 'cookies' }, 'tokenDelivery'],
      [{ tokenSources: ['cookie'] }, 'tokenSources'],
      [{ tokenDelivery: 'cookie', tokenSources: ['query'] }, 'tokenSources'],
      [{ tokenDelivery: 'cookie', tokenSources: ['header', 'header'] }, 'tokenSources'],
      [{ tokenDelivery: 'cookie', tokenSources: [] }, 'tokenSources'],
      [{ tokenDelivery: 'cookie', cookies: { secure: 'yes' } }, 'cookies.secure'],
      [{ tokenDelivery: 'cookie', cookies: { sameSite: 'relaxed' } }, 'cookies.sameSite'],
      [
        { tokenDelivery: 'cookie', cookies: { sameSite: 'none', secure: false } },
        'cookies.sameSite',
      ],
      [{ tokenDelivery: 'cookie', cookies: { domain: 'example.com' } }, 'cookies.domain'],
      [
        { tokenDelivery: 'cookie', cookies: { names: { access: '__Host-at' } } },
        'cookies.names.access',
      ],
      [
        { tokenDelivery: 'cookie', cookies: { names: { refresh: 'a b' } } },
        'cookies.names.refresh',
      ],
      [
        { tokenDelivery: 'cookie', cookies: { names: { access: 'same', csrf: 'same' } } },
        'cookies.names',
      ],
      [{ tokenDelivery: 'cookie', csrf: { header: 'cookie' } }, 'csrf.header'],
      [
        { tokenDelivery: 'cookie', csrf: { allowedOrigins: ['https://app.example.com/path'] } },
        'csrf.allowedOrigins[0]',
      ],
      [{ tokenDelivery: 'cookie', csrf: { allowedOrigins: ['*'] } }, 'csrf.allowedOrigins[0]'],
      [{ tokenDelivery: 'cookie', csrf: { requireAuth: 1 } }, 'csrf.requireAuth'],
    ];
    for (const [options, option] of cases)
      expect(optionError(options).option, JSON.stringify(options)).toBe(option);
  });

  it('default to json delivery with the header as the only token source', () => {
    const { web } = createAuth({ secret: SECRET }).options;
    expect(web.tokenDelivery).toBe('json');
    expect(web.tokenSources).toEqual(['header']);
    expect(web.cookies).toMatchObject({ secure: true, sameSite: 'Lax' });
    const cookie = createAuth({ secret: SECRET, tokenDelivery: 'cookie' }).options.web;
    expect(cookie.tokenSources).toEqual(['header', 'cookie']);
    expect(cookie.cookies.names).toEqual({
      access: '__Host-access_token',
      refresh: '__Secure-refresh_token',
      csrf: '__Host-csrf_token',
    });
  });
});

describe('insecure cookie settings in production', () => {
  const env = process.env.NODE_ENV;
  afterEach(() => {
    process.env.NODE_ENV = env;
  });

  it('warn once', async () => {
    process.env.NODE_ENV = 'production';
    const seen: Error[] = [];
    const listener = (warning: Error) => seen.push(warning);
    process.on('warning', listener);
    try {
      await createAuth({
        secret: SECRET,
        redis: 'redis://127.0.0.1:1',
        tokenDelivery: 'cookie',
      }).close();
      const first = createAuth({
        secret: SECRET,
        redis: 'redis://127.0.0.1:1',
        tokenDelivery: 'cookie',
        cookies: { secure: false },
      });
      const second = createAuth({
        secret: SECRET,
        redis: 'redis://127.0.0.1:1',
        tokenDelivery: 'both',
        cookies: { sameSite: 'none' },
      });
      await once(process, 'warning');
      await tick(); // a second warning would be emitted on the same tick queue
      await first.close();
      await second.close();
      const ours = seen.filter(
        (w) => (w as Error & { code?: string }).code === 'KOA_JWT_REDIS_INSECURE_COOKIE',
      );
      expect(ours).toHaveLength(1);
      expect(ours[0]!.message).toMatch(/not Secure/);
    } finally {
      process.off('warning', listener);
    }
  });
});

describe('readCookie', () => {
  const ctx = (cookie: string) => ({ get: (name: string) => (name === 'cookie' ? cookie : '') });

  it('finds a cookie among others, unquotes it, and takes the first of duplicates', () => {
    expect(readCookie(ctx('a=1; __Host-at=tok; b=2'), '__Host-at')).toBe('tok');
    expect(readCookie(ctx('at="quoted"'), 'at')).toBe('quoted');
    expect(readCookie(ctx('at=first;at=second'), 'at')).toBe('first');
  });

  it('gives undefined for absent, empty or prefix-only matches', () => {
    expect(readCookie(ctx(''), 'at')).toBeUndefined();
    expect(readCookie(ctx('at='), 'at')).toBeUndefined();
    expect(readCookie(ctx('xat=1; at2=2'), 'at')).toBeUndefined();
  });
});

describe('a cookie past what browsers keep', () => {
  it('warns once (KOA_JWT_REDIS_COOKIE_SIZE) naming the cookie and its size, and still sets it', () => {
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const auth = createAuth({ secret: SECRET, tokenDelivery: 'cookie' });
      const cookies = new TokenCookies(auth.options.web, 3600);
      const set: string[] = [];
      const ctx = { get: () => '', append: (_: string, value: string) => set.push(value) };
      const pair = (access: string) => ({
        access_token: access,
        refresh_token: 'r.e.f',
        token_type: 'bearer' as const,
        expires_in: 900,
      });
      cookies.set(ctx as never, pair('a'.repeat(4096 - '__Host-access_token'.length)), ['/'], true);
      expect(warning).not.toHaveBeenCalled();
      cookies.set(ctx as never, pair('a'.repeat(5000)), ['/'], true);
      cookies.set(ctx as never, pair('a'.repeat(6000)), ['/'], true);
      expect(warning).toHaveBeenCalledTimes(1);
      expect(warning.mock.calls[0]![0]).toMatch(
        /^koa-jwt-redis: the __Host-access_token cookie is 5019 bytes/,
      );
      expect(warning.mock.calls[0]![1]).toEqual({ code: 'KOA_JWT_REDIS_COOKIE_SIZE' });
      expect(set.filter((c) => c.startsWith('__Host-access_token=a'))).toHaveLength(3);
    } finally {
      warning.mockRestore();
    }
  });
});
