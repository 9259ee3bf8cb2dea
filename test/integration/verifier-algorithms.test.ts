import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Auth,
  AuthConfigError,
  AuthError,
  createAuth,
  createVerifier,
  type KeyConfig,
  type Verifier,
  type VerifierOptions,
} from '../../src/index.js';
import { decodeSegment } from '../helpers/forge.js';
import { call, serve } from '../helpers/http.js';
import { keyPairFor } from '../helpers/keys.js';

/*
 * README "Algorithms" ends with a verifier narrowed to two algorithms,
 * createVerifier({ jwksUri, issuer, audience, algorithms: ['EdDSA', 'ES512'] }), reading the JWKS
 * of an auth service that signs with Ed25519 and still publishes the P-521 key it replaced; the
 * verifier options table says "JWKs with another `alg` are ignored". Here that JWKS, served on
 * loopback by `auth.jwks()`, also publishes an RS256 and an ES256 key (older rotations), and every
 * one of the four keys has signed a token.
 */

const issuer = 'https://auth.example.test';
const audience = 'api';
const NARROWED: VerifierOptions['algorithms'] = ['EdDSA', 'ES512'];

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function instance(keys: KeyConfig[]): Auth {
  const auth = createAuth({ keys, issuer, audience });
  cleanup.push(() => auth.close());
  return auth;
}

/** One key per algorithm, with a kid naming it. */
const pairs = {
  EdDSA: keyPairFor('EdDSA'),
  ES512: keyPairFor('ES512'),
  RS256: keyPairFor('RS256'),
  ES256: keyPairFor('ES256'),
};
type Alg = keyof typeof pairs;
const ALGS = Object.keys(pairs) as Alg[];
const kidOf = (alg: Alg) => `key-${alg}`;

/**
 * The auth service of the README (EdDSA signs; the older keys are verify-only) on 127.0.0.1, and
 * an access token signed by each key, each by the deploy that signed with it.
 */
async function authService(): Promise<{ jwksUri: string; tokens: Record<Alg, string> }> {
  const service = instance(
    ALGS.map((alg, i): KeyConfig =>
      i === 0
        ? { algorithm: alg, kid: kidOf(alg), privateKey: pairs[alg].privateKey }
        : {
            algorithm: alg,
            kid: kidOf(alg),
            publicKey: pairs[alg].publicKey,
            verifyOnly: true,
          },
    ),
  );
  const app = new Koa();
  app.use(service.jwks());
  const server = await serve(app);
  cleanup.push(() => server.close());
  const tokens = {} as Record<Alg, string>;
  for (const alg of ALGS) {
    const signer = instance([
      { algorithm: alg, kid: kidOf(alg), privateKey: pairs[alg].privateKey },
    ]);
    const { access_token } = await signer.generateTokens({ id: `user-${alg}` });
    expect(decodeSegment(access_token, 0)).toMatchObject({ alg, kid: kidOf(alg) });
    tokens[alg] = access_token;
  }
  // The JWKS publishes all four keys, each with its alg.
  const published = (await call(server.url, '/.well-known/jwks.json')).body as {
    keys: { kid: string; alg: string }[];
  };
  expect(published.keys.map(({ kid, alg }) => ({ kid, alg }))).toEqual(
    ALGS.map((alg) => ({ kid: kidOf(alg), alg })),
  );
  return { jwksUri: `${server.url}/.well-known/jwks.json`, tokens };
}

/** The README's verifier, behind `requireAuth()` on a Koa server; its first JWKS report. */
async function resourceService(options: VerifierOptions): Promise<{
  verifier: Verifier;
  url: string;
  report: { kids: string[]; rejected: { kid?: string; reason: string }[] };
}> {
  const verifier = createVerifier(options);
  const loaded = new Promise<{ kids: string[]; rejected: { kid?: string; reason: string }[] }>(
    (resolve) => verifier.on('jwks_refresh', resolve),
  );
  await verifier.ready();
  const app = new Koa();
  app.use(verifier.requireAuth());
  app.use((ctx) => {
    ctx.body = { sub: ctx.state.user.sub };
  });
  const server = await serve(app);
  cleanup.push(() => server.close());
  return { verifier, url: server.url, report: await loaded };
}

/** The AuthError code `verify` rejects with, or 'verified'. */
async function verdict(verifier: Verifier, token: string): Promise<string> {
  try {
    await verifier.verify(token);
    return 'verified';
  } catch (error) {
    if (error instanceof AuthError) return error.code;
    throw error;
  }
}

describe("createVerifier({ algorithms: ['EdDSA', 'ES512'] }) against one JWKS with more algorithms", () => {
  it('verifies the EdDSA and ES512 tokens, and refuses the RS256 and ES256 ones with token_invalid', async () => {
    const { jwksUri, tokens } = await authService();
    const { verifier, url } = await resourceService({
      jwksUri,
      issuer,
      audience,
      algorithms: NARROWED,
    });
    for (const alg of ['EdDSA', 'ES512'] as const) {
      expect(await verdict(verifier, tokens[alg]), alg).toBe('verified');
      const reply = await call(url, '/orders', { token: tokens[alg] });
      expect(reply.status, alg).toBe(200);
      expect(reply.body).toEqual({ sub: `user-${alg}` });
    }
    for (const alg of ['RS256', 'ES256'] as const) {
      // The keys are in the JWKS and the signatures genuine: only `algorithms` leaves them out.
      expect(await verdict(verifier, tokens[alg]), alg).toBe('token_invalid');
      const reply = await call(url, '/orders', { token: tokens[alg] });
      expect(reply.status, alg).toBe(401);
      expect(reply.body.error, alg).toBe('token_invalid');
      expect(reply.headers.get('www-authenticate'), alg).toMatch(/^Bearer/);
    }
    // Still accepted after the refusals (an unknown kid costs at most one refetch, never the keys).
    expect(await verdict(verifier, tokens.EdDSA)).toBe('verified');
  });

  it('ignores the JWKs with another alg: not loaded, listed as rejected, the others in use', async () => {
    const { jwksUri } = await authService();
    const { report } = await resourceService({ jwksUri, issuer, audience, algorithms: NARROWED });
    expect(report.kids).toEqual([kidOf('EdDSA'), kidOf('ES512')]);
    expect(report.rejected.map((r) => r.kid)).toEqual([kidOf('RS256'), kidOf('ES256')]);
  });

  it('the control: the default (every asymmetric algorithm) takes all four keys from the same JWKS', async () => {
    const { jwksUri, tokens } = await authService();
    const { verifier, report } = await resourceService({ jwksUri, issuer, audience });
    expect(report.kids).toEqual(ALGS.map(kidOf));
    expect(report.rejected).toEqual([]);
    for (const alg of ALGS) expect(await verdict(verifier, tokens[alg]), alg).toBe('verified');
  });

  it('a JWKS whose every key has another alg is a failed load: ready() rejects, tokens get token_invalid', async () => {
    const { jwksUri, tokens } = await authService();
    const verifier = createVerifier({ jwksUri, issuer, audience, algorithms: ['PS256'] });
    const failed = new Promise<Error>((resolve) =>
      verifier.on('jwks_error', ({ error }) => resolve(error)),
    );
    const ready = await verifier.ready().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(ready).toBeInstanceOf(AuthConfigError);
    expect((ready as AuthConfigError).code).toBe('invalid_option');
    expect((ready as AuthConfigError).option).toBe('jwksUri');
    expect(await failed).toBeInstanceOf(Error);
    for (const alg of ALGS) expect(await verdict(verifier, tokens[alg]), alg).toBe('token_invalid');
  });
});
