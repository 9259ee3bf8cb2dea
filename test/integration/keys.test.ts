import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/basic/app.js';
import {
  ALGORITHMS,
  type Auth,
  type AuthOptions,
  createAuth,
  type KeyConfig,
} from '../../src/index.js';
import { harnessRedisUrl, uniquePrefix } from '../helpers/auth.js';
import { decodeSegment } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { keyFor, keyPairFor, verifyOnly } from '../helpers/keys.js';
import { readmeBlocks } from '../helpers/readme.js';

const alice = { username: 'alice', password: 'wonderland' };

/** A running deploy of the example app: its own Auth and server, on the shared Redis. */
interface Deploy {
  auth: Auth;
  server: Served;
}
const running: Deploy[] = [];

async function deploy(keys: KeyConfig[], options: Partial<AuthOptions> = {}): Promise<Deploy> {
  const auth = createAuth({
    keys,
    redis: harnessRedisUrl(),
    keyPrefix: uniquePrefix(),
    userFields: ['role'],
    ...options,
  });
  const server = await serve(createApp(auth));
  const d = { auth, server };
  running.push(d);
  return d;
}

afterEach(async () => {
  for (const { auth, server } of running.splice(0)) {
    await server.close();
    await auth.close();
  }
});

const login = (d: Deploy) => call(d.server.url, '/login', { body: alice });
const refresh = (d: Deploy, token: string) =>
  call(d.server.url, '/refresh', { body: { refresh_token: token } });
const me = (d: Deploy, token: string) => call(d.server.url, '/me', { token });
const kidOf = (token: string) => decodeSegment(token, 0).kid;

describe('every supported algorithm through the full stack', () => {
  it.each(ALGORITHMS)(
    '%s: login, requireAuth over HTTP, refresh, and the stateless strategy',
    async (algorithm) => {
      const key = keyFor(algorithm, { kid: `k-${algorithm}` });
      const d = await deploy([key]);
      const pair = await login(d);
      expect(pair.status).toBe(200);
      expect(decodeSegment(pair.body.access_token, 0)).toMatchObject({
        alg: algorithm,
        kid: `k-${algorithm}`,
        typ: 'at+jwt',
      });
      expect(decodeSegment(pair.body.refresh_token, 0)).toMatchObject({
        alg: algorithm,
        kid: `k-${algorithm}`,
        typ: 'rt+jwt',
      });

      const user = await me(d, pair.body.access_token);
      expect(user.status).toBe(200);
      expect(user.body).toMatchObject({ sub: '1', role: 'admin', token_use: 'access' });

      const next = await refresh(d, pair.body.refresh_token);
      expect(next.status).toBe(200);
      expect((await me(d, next.body.access_token)).status).toBe(200);
      // The refresh token is not a bearer token, whatever the algorithm.
      expect((await me(d, next.body.refresh_token)).status).toBe(401);

      const stateless = await d.auth.generateTokens({ id: 7 }, { strategy: 'jwt' });
      expect(
        await d.auth.strategies
          .get('jwt')
          .readToken(stateless.access_token, { checkSession: false }),
      ).toMatchObject({ sub: '7' });
    },
  );
});

describe('key rotation', () => {
  it('rejects a token signed by a retired key (removed from the ring), access and refresh alike', async () => {
    const old = keyFor('ES256', { kid: 'old' });
    const keyPrefix = uniquePrefix();
    const before = await deploy([old], { keyPrefix });
    const pair = (await login(before)).body;
    const after = await deploy([keyFor('ES256', { kid: 'new' })], { keyPrefix });

    const access = await me(after, pair.access_token);
    expect(access.status).toBe(401);
    expect(access.body.error).toBe('token_invalid');
    const refreshed = await refresh(after, pair.refresh_token);
    expect(refreshed.status).toBe(401);
    expect(refreshed.body.error).toBe('token_invalid');
  });

  it('add verify-only → make it the signer → retire the old one: no session is lost on the way', async () => {
    const old = keyFor('RS256', { kid: 'old' });
    const next = keyFor('ES256', { kid: 'new' });
    const keyPrefix = uniquePrefix();

    // Step 0: everyone is logged in with tokens signed by the old key.
    const v0 = await deploy([old], { keyPrefix });
    const a = (await login(v0)).body;
    const b = (await login(v0)).body;
    const c = (await login(v0)).body;

    // Step 1: the new key joins as verify-only. Nothing changes for clients; tokens are still signed by "old".
    const v1 = await deploy([old, verifyOnly(next)], { keyPrefix });
    expect((await me(v1, a.access_token)).status).toBe(200);
    const a1 = (await refresh(v1, a.refresh_token)).body;
    expect(kidOf(a1.access_token)).toBe('old');

    // Step 2: the new key signs; the old one verifies. Instances of step 1 still running (a rolling
    // deploy) accept the new tokens, because they already know the new key.
    // The old key verifies from its public key alone: the private key can be destroyed now.
    const oldPublic = {
      kid: 'old',
      algorithm: 'RS256' as const,
      publicKey: createPublicKey(old.privateKey as KeyObject),
      verifyOnly: true,
    };
    const v2 = await deploy([next, oldPublic], { keyPrefix });
    expect((await me(v2, a1.access_token)).status).toBe(200);
    const a2 = (await refresh(v2, a1.refresh_token)).body;
    expect(kidOf(a2.access_token)).toBe('new');
    expect(kidOf(a2.refresh_token)).toBe('new');
    expect((await me(v1, a2.access_token)).status).toBe(200);
    expect((await refresh(v1, a2.refresh_token)).status).toBe(200);
    // A refresh token issued under the old key, never used since step 0, still refreshes.
    const b2 = await refresh(v2, b.refresh_token);
    expect(b2.status).toBe(200);
    expect(kidOf(b2.body.access_token)).toBe('new');

    // Step 3, after the longest token lifetime (refreshTokenTtl): the old key leaves the ring.
    // Every session that was used since step 2 carries new-key tokens and lives on.
    const v3 = await deploy([next], { keyPrefix });
    expect((await me(v3, b2.body.access_token)).status).toBe(200);
    const b3 = await refresh(v3, b2.body.refresh_token);
    expect(b3.status).toBe(200);
    expect((await v3.auth.listSessions(1)).length).toBe(3);
    // Only a token still signed by the old key is refused — in real time it would have expired by now.
    expect((await refresh(v3, c.refresh_token)).status).toBe(401);
    expect((await me(v3, c.access_token)).status).toBe(401);
  });
  it("the README's recipe, each step's `keys` as written there: the old key kept as deployed", async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Rotating keys without logging anyone out'));
    const steps = readmeBlocks(section.slice(0, section.indexOf('\n## ')))
      .map((block) => block.code)
      .filter((code) => code.trimStart().startsWith('keys:'));
    expect(steps).toHaveLength(3);
    const oldPair = keyPairFor('ES256');
    const newKey = keyPairFor('ES256').privateKey;
    const keys = (code: string): KeyConfig[] =>
      // The README's fragment is `keys: [...]` with its comments: a property of an object literal.
      (
        new Function('OLD_KEY', 'NEW_KEY', 'OLD_PUBLIC_KEY', `return { ${code} };`) as (
          ...keys: KeyObject[]
        ) => { keys: KeyConfig[] }
      )(oldPair.privateKey, newKey, oldPair.publicKey).keys;
    const keyPrefix = uniquePrefix();

    // Before: the key of the README's createAuth example, no kid (the derived one).
    const v0 = await deploy([{ algorithm: 'ES256', privateKey: oldPair.privateKey }], {
      keyPrefix,
    });
    const a = (await login(v0)).body;
    const b = (await login(v0)).body;
    const [step2, step3, step4] = steps.map(keys);
    const v2 = await deploy(step2!, { keyPrefix });
    expect((await me(v2, a.access_token)).status).toBe(200);
    const a2 = await refresh(v2, a.refresh_token);
    expect(a2.status).toBe(200);
    const v3 = await deploy(step3!, { keyPrefix });
    expect((await me(v3, a2.body.access_token)).status).toBe(200);
    const a3 = await refresh(v3, a2.body.refresh_token);
    expect(a3.status).toBe(200);
    expect(kidOf(a3.body.access_token)).toBe('2026-12');
    const b3 = await refresh(v3, b.refresh_token);
    expect(b3.status).toBe(200);
    const v4 = await deploy(step4!, { keyPrefix });
    expect((await me(v4, a3.body.access_token)).status).toBe(200);
    expect((await refresh(v4, b3.body.refresh_token)).status).toBe(200);
  });
});
