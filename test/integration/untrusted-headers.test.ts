import { createPublicKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Auth, createAuth } from '../../src/index.js';
import { forgeAsymmetric, forgeHmac, rsaKeys, SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { idApp } from '../helpers/load.js';

/*
 * SECURITY.md: "`jku`, `x5u`, embedded `jwk`, `crit` are never followed". The unit tests show such
 * tokens are refused; this shows nothing is ever fetched: the URLs point at a real loopback server
 * that serves the attacker's key and counts every request it gets.
 */

const attacker = rsaKeys();
const attackerJwk = {
  ...createPublicKey(attacker.privateKey).export({ format: 'jwk' }),
  kid: 'evil',
  alg: 'RS256',
  use: 'sig',
};
const now = () => Math.floor(Date.now() / 1000);

let keyServer: Server;
let keyServerUrl: string;
let fetched = 0;
let auth: Auth;
let app: Served;

beforeAll(async () => {
  keyServer = createServer((req, res) => {
    fetched++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [attackerJwk] }));
  });
  await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  keyServerUrl = `http://127.0.0.1:${(keyServer.address() as { port: number }).port}`;
  auth = createAuth({ secret: SECRET });
  app = await serve(idApp(auth));
});
afterAll(async () => {
  await app.close();
  await auth.close();
  await new Promise((resolve) => keyServer.close(resolve));
});

describe('untrusted headers are never followed', () => {
  it('jku, x5u, an embedded jwk, x5c and crit: 401 over HTTP, and the key server never hears from us', async () => {
    const login = await call(app.url, '/login', { body: { id: 1 } });
    const { sid } = JSON.parse(
      Buffer.from(login.body.access_token.split('.')[1], 'base64url').toString(),
    ) as { sid: string };
    const claims = {
      sub: '1',
      sid,
      stg: 'redis',
      token_use: 'access',
      iat: now(),
      exp: now() + 600,
    };
    const headers = [
      { alg: 'RS256', typ: 'at+jwt', kid: 'evil', jku: `${keyServerUrl}/jwks.json` },
      { alg: 'RS256', typ: 'at+jwt', jku: `${keyServerUrl}/jwks.json` },
      { alg: 'RS256', typ: 'at+jwt', kid: 'evil', x5u: `${keyServerUrl}/cert.pem` },
      { alg: 'RS256', typ: 'at+jwt', jwk: attackerJwk },
      { alg: 'RS256', typ: 'at+jwt', x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
    ];
    for (const header of headers) {
      const token = forgeAsymmetric(header, claims, attacker.privateKey, 'sha256');
      const reply = await call(app.url, '/me', { token });
      expect(reply.status, JSON.stringify(header)).toBe(401);
      expect(reply.body.error).toBe('token_invalid');
      expect(reply.text).not.toContain(token);
    }
    // The real key and a correct header, plus a URL or crit the library would have to honour: refused too.
    const realKid = JSON.parse(
      Buffer.from(login.body.access_token.split('.')[0], 'base64url').toString(),
    ).kid as string;
    for (const extra of [
      { jku: `${keyServerUrl}/jwks.json` },
      { x5u: `${keyServerUrl}/c` },
      { crit: ['exp'] },
      { crit: ['b64'], b64: false },
    ]) {
      const token = forgeHmac(
        { alg: 'HS256', typ: 'at+jwt', kid: realKid, ...extra },
        claims,
        SECRET,
      );
      expect((await call(app.url, '/me', { token })).status).toBe(401);
    }
    expect(
      (
        await call(app.url, '/me', {
          token: forgeHmac({ alg: 'HS256', typ: 'at+jwt', kid: realKid }, claims, SECRET),
        })
      ).status,
    ).toBe(200);
    expect(fetched).toBe(0);
  });
});
