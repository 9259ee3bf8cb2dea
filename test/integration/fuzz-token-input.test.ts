import Router from '@koa/router';
import fc from 'fast-check';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Algorithm,
  type Auth,
  AuthError,
  type AuthOptions,
  type TokenPair,
  type TokenStrategy,
} from '../../src/index.js';
import { testAuth } from '../helpers/auth.js';
import { decodeSegment, forgeHmac, forgeSigned, SECRET } from '../helpers/forge.js';
import { serve, type Served } from '../helpers/http.js';
import { keyPairFor } from '../helpers/keys.js';
import { webApp } from '../helpers/web.js';

/*
 * Property-based fuzzing of every place a token comes in: random strings, real tokens mutated
 * (segments swapped, characters flipped, headers edited and re-signed with the real key, so that
 * only the header checks can refuse them), and random payloads signed with the real key. Each
 * property runs on three key rings, one per verification path: HS256 (HMAC), RS256 (jsonwebtoken)
 * and EdDSA (node:crypto).
 * Seeded so that a failure reproduces: FC_SEED=<seed> npx vitest run test/integration/fuzz-token-input.test.ts
 */
const SEED = process.env.FC_SEED === undefined ? 20_261_122 : Number(process.env.FC_SEED);
const RUNS = Number(process.env.FC_RUNS ?? 2000);
const HTTP_RUNS = Math.max(1, Math.floor(RUNS / 4));
const settings = (offset: number, numRuns = RUNS): fc.Parameters<unknown> => ({
  seed: SEED + offset,
  numRuns,
});

const HASH: Record<string, string> = { HS384: 'sha384', HS512: 'sha512' };
const FORBIDDEN = ['jku', 'x5u', 'jwk', 'x5c', 'crit'];

/** One algorithm per verification path: HMAC, jsonwebtoken, node:crypto. */
const RINGS = ['HS256', 'RS256', 'EdDSA'] as const satisfies readonly Algorithm[];

/** An instance whose key ring holds one key of `algorithm`, and what the properties need of it. */
interface Ring {
  algorithm: Algorithm;
  options: Partial<AuthOptions>;
  auth: Auth;
  redisStrategy: TokenStrategy;
  jwtStrategy: TokenStrategy;
  pairs: TokenPair[];
  kid: string;
  /** Signs any header and payload with the ring's real key (HMAC: with the hash the header's alg names). */
  sign: (header: Record<string, unknown>, payload: unknown) => string;
}
const rings = new Map<Algorithm, Ring>();

// The ring the properties and arbitraries below use: each describe block sets it for its tests.
let auth: Auth;
let redisStrategy: TokenStrategy;
let jwtStrategy: TokenStrategy;
let pairs: TokenPair[];
let kid: string;
let ring: Ring;
function use(algorithm: Algorithm): void {
  ring = rings.get(algorithm)!;
  ({ auth, redisStrategy, jwtStrategy, pairs, kid } = ring);
}

beforeAll(async () => {
  console.info(
    `fast-check seed ${SEED}, ${RUNS} runs per property and key ring (override with FC_SEED / FC_RUNS)`,
  );
  for (const algorithm of RINGS) {
    const privateKey = algorithm === 'HS256' ? undefined : keyPairFor(algorithm).privateKey;
    const options: Partial<AuthOptions> = {
      ...(privateKey === undefined
        ? {}
        : { secret: undefined, keys: [{ algorithm, privateKey, kid: `fuzz-${algorithm}` }] }),
      // Issuer and audience configured, so their checks run on fuzzed claims too.
      issuer: 'https://issuer.test',
      audience: ['api', 'web'],
      userFields: ['role'],
    };
    const instance = testAuth(options);
    const issued: TokenPair[] = [];
    for (const id of ['alice', 7, 'bob'])
      issued.push(await instance.generateTokens({ id, role: 'member' }));
    rings.set(algorithm, {
      algorithm,
      options,
      auth: instance,
      redisStrategy: instance.strategies.get('redis'),
      jwtStrategy: instance.strategies.get('jwt'),
      pairs: issued,
      kid: decodeSegment(issued[0]!.access_token, 0).kid as string,
      sign:
        privateKey === undefined
          ? (header, payload) =>
              forgeHmac(
                header,
                payload,
                SECRET,
                typeof header.alg === 'string' ? (HASH[header.alg] ?? 'sha256') : 'sha256',
              )
          : (header, payload) => forgeSigned(algorithm, privateKey, header, payload),
    });
  }
  use('HS256');
});
afterAll(async () => {
  for (const { auth } of rings.values()) await auth.close();
});

const realTokens = () => pairs.flatMap((p) => [p.access_token, p.refresh_token]);

// ---------------------------------------------------------------- arbitraries

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const segment = fc.string({ unit: fc.constantFrom(...B64URL), maxLength: 60 });
const b64json = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const randomStrings = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 200 }),
  fc.tuple(segment, segment, segment).map((s) => s.join('.')),
  fc.array(segment, { maxLength: 6 }).map((s) => s.join('.')),
  fc
    .tuple(fc.jsonValue(), fc.jsonValue(), segment)
    .map(([h, p, s]) => `${b64json(h)}.${b64json(p)}.${s}`),
  fc.constantFrom(
    '',
    '.',
    '..',
    '...',
    'null',
    'Bearer',
    'e30.e30.',
    'e30.e30.e30',
    `${'a'.repeat(9000)}.b.c`,
  ),
);

/** Real tokens, spliced and corrupted without re-signing. */
const mutatedTokens = fc.oneof(
  // Segments taken from (possibly) different real tokens, in any order.
  fc
    .tuple(fc.nat(), fc.nat(), fc.nat(), fc.array(fc.nat(2), { minLength: 1, maxLength: 4 }))
    .map(([a, b, c, order]) => {
      const tokens = realTokens();
      const sources = [a, b, c].map((n) => tokens[n % tokens.length]!.split('.'));
      return order.map((index, i) => sources[i % 3]![index]!).join('.');
    }),
  // Characters replaced, inserted or removed.
  fc
    .tuple(
      fc.nat(),
      fc.array(
        fc.tuple(fc.nat(), fc.constantFrom(...`${B64URL}.=+/ \u0000é\u{1F600}`), fc.nat(2)),
        { minLength: 1, maxLength: 5 },
      ),
    )
    .map(([n, edits]) => {
      const tokens = realTokens();
      let token = tokens[n % tokens.length]!;
      for (const [position, char, mode] of edits) {
        const at = position % (token.length + 1);
        token =
          token.slice(0, at) + (mode === 2 ? '' : char) + token.slice(mode === 1 ? at : at + 1);
      }
      return token;
    }),
  // Truncated or extended.
  fc.tuple(fc.nat(), fc.integer({ min: -40, max: 40 })).map(([n, cut]) => {
    const tokens = realTokens();
    const token = tokens[n % tokens.length]!;
    return cut < 0 ? token.slice(0, cut) : token + 'A'.repeat(cut);
  }),
);

const KEEP = Symbol('keep');
const DROP = Symbol('drop');
const edit = <T>(values: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: fc.constant(KEEP), weight: 4 }, fc.constant(DROP), values);

/** A real token whose header is edited, then signed with the ring's real key (HMAC: with the hash its alg names). */
const headerEdited = fc
  .record({
    n: fc.nat(),
    alg: edit(
      fc.oneof(
        fc.constantFrom(
          'HS256',
          'HS384',
          'HS512',
          'RS256',
          'RS384',
          'PS256',
          'ES256',
          'EdDSA',
          'Ed25519',
          'none',
          'None',
          'hs256',
          'HS256 ',
          '',
        ),
        fc.jsonValue(),
      ),
    ),
    typ: edit(
      fc.oneof(
        fc.constantFrom('at+jwt', 'rt+jwt', 'JWT', 'AT+JWT', 'at+JWT', 'application/at+jwt', ''),
        fc.jsonValue(),
      ),
    ),
    kid: edit(
      fc.oneof(
        fc.constant('REAL'),
        fc.constantFrom('', '../../etc/passwd', "' OR 1=1 --", 'http://127.0.0.1:1/key'),
        fc.jsonValue(),
      ),
    ),
    crit: edit(fc.oneof(fc.array(fc.string()), fc.jsonValue())),
    jku: edit(fc.constantFrom('http://127.0.0.1:1/jwks.json', '', 'file:///etc/passwd')),
    x5u: edit(fc.constant('http://127.0.0.1:1/cert.pem')),
    jwk: edit(fc.constant({ kty: 'oct', k: Buffer.from(SECRET).toString('base64url') })),
    extra: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue(), { maxKeys: 3 }),
  })
  .map(({ n, extra, ...edits }) => {
    const tokens = realTokens();
    const original = tokens[n % tokens.length]!;
    const header: Record<string, unknown> = { ...extra, ...decodeSegment(original, 0) };
    for (const [name, value] of Object.entries(edits)) {
      if (value === DROP) delete header[name];
      else if (value !== KEEP) header[name] = value === 'REAL' ? kid : value;
    }
    const payload = decodeSegment(original, 1);
    return {
      token: ring.sign(header, payload),
      header,
      kind: payload.token_use as 'access' | 'refresh',
    };
  });

const weird = fc.oneof(
  fc.jsonValue(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    null,
    '',
    '\uD800',
    'a\uDC00b',
    '{u:1}',
    '|',
    'u'.repeat(257),
    0,
    -1,
    1e308,
    2 ** 53,
    true,
    [],
    {},
  ),
);
const time = fc.oneof(
  fc.integer({ min: -10_000, max: 10_000 }).map((d) => Math.floor(Date.now() / 1000) + d),
  fc.double(),
  weird,
);

/** Payloads signed with the real key: random JSON, or real claims with fields replaced or removed. */
const resignedPayloads = fc
  .oneof(
    fc
      .tuple(
        fc.constantFrom('access', 'refresh'),
        fc.oneof(fc.jsonValue(), fc.string({ unit: 'binary', maxLength: 80 })),
      )
      .map(([kind, payload]) => ({ kind, payload })),
    fc
      .record({
        n: fc.nat(),
        kind: fc.constantFrom('access', 'refresh'),
        sub: edit(weird),
        sid: edit(weird),
        jti: edit(weird),
        token_use: edit(fc.oneof(fc.constantFrom('access', 'refresh'), weird)),
        exp: edit(time),
        iat: edit(time),
        nbf: edit(time),
        iss: edit(fc.oneof(fc.constant('https://issuer.test'), weird)),
        aud: edit(fc.oneof(fc.constantFrom('api', 'web', ['x', 'web']), weird)),
        usr: edit(
          fc.oneof(
            fc.dictionary(
              fc.constantFrom(
                'role',
                'nbf',
                'exp',
                'iat',
                'sub',
                'aud',
                '__proto__',
                'constructor',
              ),
              weird,
            ),
            weird,
          ),
        ),
      })
      .map(({ n, kind, ...edits }) => {
        const pair = pairs[n % pairs.length]!;
        const payload: Record<string, unknown> = decodeSegment(
          kind === 'access' ? pair.access_token : pair.refresh_token,
          1,
        );
        for (const [name, value] of Object.entries(edits)) {
          if (value === DROP) delete payload[name];
          else if (value !== KEEP) payload[name] = value;
        }
        return { kind, payload };
      }),
  )
  .map(({ kind, payload }) =>
    ring.sign({ alg: ring.algorithm, typ: kind === 'access' ? 'at+jwt' : 'rt+jwt', kid }, payload),
  );

const anyToken = fc.oneof(
  randomStrings,
  mutatedTokens,
  headerEdited.map((h) => h.token),
  resignedPayloads,
);

// ---------------------------------------------------------------- the checks

/** The codes a bad token may get: each a 401. */
const TOKEN_CODES: readonly string[] = [
  'token_missing',
  'token_invalid',
  'token_expired',
  'token_revoked',
  'refresh_reused',
];

/**
 * Runs `call`; anything it throws must be an AuthError with one of TOKEN_CODES, so never a 503
 * (Redis is up throughout) nor a 500.
 */
async function onlyAuthErrors(call: () => unknown): Promise<void> {
  try {
    await call();
  } catch (error) {
    if (!(error instanceof AuthError))
      throw new Error(`threw a non-AuthError: ${String(error)}`, { cause: error });
    if (error.code === 'store_unavailable')
      throw new Error(`bad input was reported as a store outage: ${String(error.cause)}`);
    if (!TOKEN_CODES.includes(error.code) || error.status !== 401)
      throw new Error(`bad input got ${error.code} (${error.status})`, { cause: error });
  }
}

/** Every entry point that takes a token from outside. */
async function everyEntryPoint(token: unknown): Promise<void> {
  // What requireAuth and getData run, with and without the session check.
  await onlyAuthErrors(() => redisStrategy.readToken(token as string, { checkSession: true }));
  await onlyAuthErrors(async () => {
    const user = await redisStrategy.readToken(token as string, { checkSession: false });
    // What the logout and session routes do next with a token read so: its subject and session
    // id go to the session helpers, which must take any a verified token carries.
    await auth.listSessions(user.sub);
    if (typeof user.sid === 'string') await auth.revokeSession(user.sub, user.sid);
  });
  expect(typeof (await auth.checkRefreshToken(token as string))).toBe('boolean');
  await onlyAuthErrors(() => auth.refreshTokens(token as string));
  await onlyAuthErrors(() => auth.invalidateRefreshToken(token as string));
}

describe.each(RINGS)('fuzzing token input (fast-check), %s key ring', (algorithm) => {
  beforeAll(() => use(algorithm));
  afterAll(() => use('HS256'));

  it('random strings: only AuthErrors, from every entry point', async () => {
    await fc.assert(fc.asyncProperty(randomStrings, everyEntryPoint), settings(1));
  });

  it('any JavaScript value where a token is expected: only AuthErrors', async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything(), everyEntryPoint),
      settings(2, Math.ceil(RUNS / 3)),
    );
  });

  it('mutated real tokens (segments swapped, characters flipped, truncated): only AuthErrors', async () => {
    await fc.assert(fc.asyncProperty(mutatedTokens, everyEntryPoint), settings(3));
  });

  it('headers edited (alg, typ, kid, crit, jku, …) and re-signed with the real key: refused unless the header is exactly right', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(headerEdited, async ({ token, header, kind }) => {
        await everyEntryPoint(token);
        // Signature checks alone (no session): the header is the only thing that can differ.
        let ok = false;
        try {
          if (kind === 'access') await redisStrategy.readToken(token, { checkSession: false });
          else ok = await jwtStrategy.checkRefreshToken!(token);
          ok ||= kind === 'access';
        } catch (error) {
          expect(error).toBeInstanceOf(AuthError);
        }
        if (ok) {
          accepted++;
          expect(header.alg).toBe(algorithm);
          expect(header.typ).toBe(kind === 'access' ? 'at+jwt' : 'rt+jwt');
          expect(header.kid === kid || header.kid === undefined).toBe(true);
          for (const name of FORBIDDEN) expect(header[name]).toBeUndefined();
        }
      }),
      settings(4),
    );
    // Not vacuous: unedited headers do pass.
    expect(accepted).toBeGreaterThan(0);
  });

  it('random payloads signed with the real key: only AuthErrors, never a store outage', async () => {
    await fc.assert(fc.asyncProperty(resignedPayloads, everyEntryPoint), settings(5));
  });
});

describe('what the fuzzer found (kept as plain regression tests)', () => {
  beforeAll(() => use('HS256'));
  const refreshOf = (pair: TokenPair) => decodeSegment(pair.refresh_token, 1);
  const resign = (payload: Record<string, unknown>) =>
    forgeHmac({ alg: 'HS256', typ: 'rt+jwt', kid }, payload, SECRET);

  it('a subject with a lone surrogate is an invalid token, not a 503 (it used to break the Redis key)', async () => {
    const token = resign({ ...refreshOf(pairs[1]!), sub: '\uD800' });
    await expect(auth.refreshTokens(token)).rejects.toMatchObject({ code: 'token_invalid' });
    await expect(auth.generateTokens({ id: 'a\uDC00' })).rejects.toBeInstanceOf(TypeError);
    await expect(auth.listSessions('\uD800')).rejects.toBeInstanceOf(TypeError);
    // Well-formed astral characters are fine.
    expect((await auth.generateTokens({ id: 'emoji-\u{1F600}' })).token_type).toBe('bearer');
  });

  it('an empty token is called empty, not "not a string" (found by a read of the README)', async () => {
    for (const call of [
      (t: unknown) => auth.refreshTokens(t as string),
      (t: unknown) => auth.invalidateRefreshToken(t as string),
    ]) {
      await expect(call('')).rejects.toMatchObject({
        code: 'token_invalid',
        message: 'The token is empty.',
      });
      await expect(call(7)).rejects.toMatchObject({
        code: 'token_invalid',
        message: 'The token is not a string.',
      });
    }
    expect(await auth.checkRefreshToken('')).toBe(false);
  });

  it('claim names jsonwebtoken cannot sign (constructor, __proto__, …) are refused at login and dropped on refresh', async () => {
    await expect(auth.generateTokens({ id: 1 }, { claims: { constructor: 'x' } })).rejects.toThrow(
      /cannot be a claim name/,
    );
    expect(() => testAuth({ userFields: ['toString'] })).toThrow(/cannot be a claim name/);
    const pair = await auth.generateTokens({ id: 'proto', role: 'member' });
    const usr = JSON.parse(
      '{"role":"admin","constructor":1,"__proto__":{"polluted":true},"exp":1}',
    ) as unknown;
    const next = await auth.refreshTokens(resign({ ...refreshOf(pair), usr }));
    const claims = decodeSegment(next.access_token, 1);
    expect(claims.role).toBe('admin');
    expect(Object.keys(claims)).not.toContain('constructor');
    expect(Object.keys(claims)).not.toContain('__proto__');
    expect(claims.exp).toBeGreaterThan(Date.now() / 1000);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe.each(RINGS)(
  'fuzzing over HTTP, %s key ring: never a 500, and only AuthErrors leave the middlewares',
  (algorithm) => {
    let server: Served;
    const foreign: unknown[] = [];

    beforeAll(async () => {
      use(algorithm);
      const app = new Koa();
      const router = new Router();
      // Outermost: sees everything thrown, keeps what is not an AuthError, lets Koa render it.
      app.use(async (ctx, next) => {
        try {
          await next();
        } catch (error) {
          if (!(error instanceof AuthError)) foreign.push(error);
          throw error;
        }
      });
      app.on('error', () => {});
      router.get('/required', auth.requireAuth(), (ctx) => {
        ctx.body = { sub: ctx.state.user.sub };
      });
      router.get('/optional', auth.getData(), (ctx) => {
        ctx.body = { sub: ctx.state.user?.sub ?? null };
      });
      router.post('/refresh', koaBody(), async (ctx) => {
        ctx.body = await auth.refreshTokens(
          (ctx.request.body as { refresh_token?: string }).refresh_token as string,
          { ctx },
        );
      });
      app.use(router.routes());
      server = await serve(app);
    });
    afterAll(async () => {
      await server.close();
      use('HS256');
    });

    // What can travel in a header value: visible ASCII and spaces.
    const headerSafe = anyToken
      .map((t) => t.replace(/[^\x20-\x7e]/g, '').trim())
      .filter((t) => t.length > 0);

    it('requireAuth, getData and refresh answer 200/401, never 500, a stack trace or the token itself', async () => {
      await fc.assert(
        fc.asyncProperty(
          headerSafe,
          fc.oneof(anyToken, fc.jsonValue()),
          async (token, refreshInput) => {
            foreign.length = 0;
            const headers = { authorization: `Bearer ${token}` };
            const required = await fetch(`${server.url}/required`, { headers });
            expect([200, 401]).toContain(required.status);
            const optional = await fetch(`${server.url}/optional`, { headers });
            expect(optional.status).toBe(200);
            await optional.text();
            const refreshed = await fetch(`${server.url}/refresh`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ refresh_token: refreshInput }),
            });
            expect([200, 401]).toContain(refreshed.status);
            const texts = [await required.text(), await refreshed.text()];
            if (required.status === 401)
              expect(TOKEN_CODES).toContain((JSON.parse(texts[0]!) as { error: string }).error);
            for (const text of texts) expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/);
            // Error bodies never echo the token back.
            if (required.status === 401 && token.length >= 16)
              expect(texts[0]).not.toContain(token);
            if (
              refreshed.status === 401 &&
              typeof refreshInput === 'string' &&
              refreshInput.length >= 16
            )
              expect(texts[1]).not.toContain(refreshInput);
            expect(foreign).toEqual([]);
          },
        ),
        settings(6, HTTP_RUNS),
      );
    });

    it('in cookie delivery: fuzzed access and refresh cookies and CSRF headers get 200/204/401/403, never 500', async () => {
      // Same keys, claims and sessions as the json instance, so mutated real tokens stay meaningful.
      const cookieAuth = testAuth({
        ...ring.options,
        keyPrefix: auth.options.keyPrefix,
        tokenDelivery: 'cookie',
      });
      const app = webApp(cookieAuth);
      const thrown: unknown[] = [];
      // Koa reports every error that reaches its own handler: none may be anything but an AuthError.
      app.on('error', (error: unknown) => {
        if (!(error instanceof AuthError)) thrown.push(error);
      });
      const web = await serve(app);
      // Cookie-safe characters, and at most 4 KiB a cookie as browsers send (Node answers 431 past 16 KiB of headers).
      const cookieSafe = headerSafe
        .map((t) => t.replace(/[;,"\\]/g, '').slice(0, 4096))
        .filter((t) => t.length > 0);
      try {
        await fc.assert(
          fc.asyncProperty(cookieSafe, cookieSafe, fc.boolean(), async (token, csrf, matching) => {
            thrown.length = 0;
            const me = await fetch(`${web.url}/me`, {
              headers: { cookie: `__Host-access_token=${token}` },
            });
            expect([200, 401]).toContain(me.status);
            await me.text();
            const unsafe = {
              origin: web.url,
              'x-csrf-token': matching ? csrf : `${csrf}x`,
              'content-type': 'application/json',
            };
            const whoami = await fetch(`${web.url}/whoami`, {
              method: 'POST',
              headers: {
                ...unsafe,
                cookie: `__Host-access_token=${token}; __Host-csrf_token=${csrf}`,
              },
              body: '{}',
            });
            expect(whoami.status).toBe(200);
            await whoami.text();
            for (const path of ['/auth/refresh', '/auth/logout']) {
              const reply = await fetch(`${web.url}${path}`, {
                method: 'POST',
                headers: {
                  ...unsafe,
                  cookie: `__Secure-refresh_token=${token}; __Host-csrf_token=${csrf}`,
                },
                body: '{}',
              });
              expect([200, 204, 401, 403], path).toContain(reply.status);
              expect(await reply.text()).not.toMatch(/\bat .*\.(ts|js):\d+/);
            }
            expect(thrown).toEqual([]);
          }),
          settings(7, Math.ceil(HTTP_RUNS / 2)),
        );
      } finally {
        await web.close();
        await cookieAuth.close();
      }
    });
  },
);
