import { describe, expect, it } from 'vitest';
import { AuthConfigError, createAuth } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';

function optionError(options: Record<string, unknown>): AuthConfigError {
  try {
    createAuth(options as never);
  } catch (error) {
    expect(error).toBeInstanceOf(AuthConfigError);
    expect((error as AuthConfigError).code).toBe('invalid_option');
    return error as AuthConfigError;
  }
  throw new Error('expected createAuth to throw');
}

describe('createAuth options', () => {
  it('validates every option at start-up, naming the one to change', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ secret: SECRET, accessTokenTtl: 0 }, 'accessTokenTtl'],
      [{ secret: SECRET, accessTokenTtl: 1.5 }, 'accessTokenTtl'],
      [{ secret: SECRET, refreshTokenTtl: Infinity }, 'refreshTokenTtl'],
      [{ secret: SECRET, accessTokenTtl: 600, refreshTokenTtl: 600 }, 'refreshTokenTtl'],
      [{ secret: SECRET, audience: [] }, 'audience'],
      [{ secret: SECRET, issuer: '' }, 'issuer'],
      [{ secret: SECRET, leeway: -1 }, 'leeway'],
      [{ secret: SECRET, userFields: 'role' }, 'userFields'],
      [{ secret: SECRET, userFields: ['exp'] }, 'userFields'],
      [{ secret: SECRET, keyPrefix: 'a{b}' }, 'keyPrefix'],
      // Two prefixes differing only in a lone surrogate would be one in UTF-8: shared keys.
      [{ secret: SECRET, keyPrefix: 'tenant\uD800:' }, 'keyPrefix'],
      // A misspelt name is named, before the algorithm it seems to leave out.
      [{ keys: [{ alg: 'HS256', secret: SECRET }] }, 'keys[0].alg'],
      // A misspelt or non-boolean verifyOnly would let the retired key sign.
      [
        { keys: [{ kid: 'old', algorithm: 'HS256', secret: SECRET, verifyonly: true }] },
        'keys[0].verifyonly',
      ],
      [
        { keys: [{ kid: 'old', algorithm: 'HS256', secret: SECRET, verifyOnly: 'yes' }] },
        'keys[0].verifyOnly',
      ],
      [{ secret: SECRET, checkSession: 'yes' }, 'checkSession'],
      [{ secret: SECRET, storeTimeout: 0 }, 'storeTimeout'],
      [{ secret: SECRET, redis: 42 }, 'redis'],
      [{ secret: SECRET, redis: {} }, 'redis'],
      [{ secret: SECRET, realm: 'a"b' }, 'realm'],
      [{ secret: SECRET, realm: 'Example API — v2' }, 'realm'],
      [{ secret: SECRET, realm: 'API €' }, 'realm'],
      [{ secret: SECRET, realm: 'café' }, 'realm'],
      [{ secret: SECRET, realm: 'a\u0001b' }, 'realm'],
      [{ secret: SECRET, realm: 'a\\b' }, 'realm'],
      [{ secret: SECRET, loadUser: 'x' }, 'loadUser'],
      [{ secret: SECRET, verifyCacheSize: -1 }, 'verifyCacheSize'],
      [{ secret: SECRET, verifyCacheSize: 1.5 }, 'verifyCacheSize'],
      [{ secret: SECRET, secrte: 'typo' }, 'secrte'],
      [{ secret: 'too-short' }, 'secret'],
      [{}, 'secret'],
      // A hole in keys (a stray comma) is named, not a TypeError from deeper down.
      // eslint-disable-next-line no-sparse-arrays
      [{ keys: [, { algorithm: 'HS256', secret: SECRET }] }, 'keys[0]'],
      [{ keys: [{ algorithm: 'HS256', secret: SECRET }, undefined] }, 'keys[1]'],
    ];
    for (const [options, option] of cases) {
      const error = optionError(options);
      expect(error.option, JSON.stringify(options)).toBe(option);
      expect(error.message).not.toContain(SECRET);
    }
  });

  it('needs an options object: an array or nothing is refused as such', () => {
    for (const options of [[], [{ secret: SECRET }], null, undefined, 'secret'])
      expect(optionError(options as never).option, JSON.stringify(options)).toBe('options');
  });

  it('shows the value it got as written: Infinity and NaN (not null), a bigint (not a TypeError)', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ absoluteSessionTtl: Infinity }, '(got Infinity)'],
      [{ accessTokenTtl: NaN }, '(got NaN)'],
      [{ accessTokenTtl: 900n }, '(got 900n)'],
      [{ accessTokenTtl: '900' }, '(got "900")'],
      [{ accessTokenTtl: () => 900 }, '(got a function)'],
      [{ tokenDelivery: Symbol('json') }, '(got a symbol)'],
    ];
    for (const [options, got] of cases)
      expect(optionError({ secret: SECRET, ...options }).message).toContain(got);
  });

  it('accepts a minimal config with the in-memory store', async () => {
    const auth = createAuth({ secret: SECRET });
    expect(auth.options).toMatchObject({
      accessTokenTtl: 900,
      refreshTokenTtl: 2_592_000,
      keyPrefix: 'auth:',
      checkSession: true,
    });
    const pair = await auth.generateTokens({ id: 1 });
    expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(true);
    await auth.close();
  });
});
