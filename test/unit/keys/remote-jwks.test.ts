import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../src/keys/algorithms.js';
import type { KeyRing } from '../../../src/keys/key-ring.js';
import {
  type JwksRefresh,
  MAX_JWKS_BYTES,
  RemoteKeySet,
  type RemoteKeySetOptions,
} from '../../../src/keys/remote-jwks.js';
import { ecKeys } from '../../helpers/forge.js';

const ASYMMETRIC = new Set(ALGORITHMS.filter((alg) => !alg.startsWith('HS')));
const good = {
  ...(ecKeys('prime256v1').publicKey.export({ format: 'jwk' }) as Record<string, string>),
  alg: 'ES256',
  kid: 'good',
};
const goodSet = JSON.stringify({ keys: [good] });

/** What the JWKS host does with the next request; `hits` counts requests. */
let answer: (req: IncomingMessage, res: ServerResponse) => void;
let hits = 0;
const server = createServer((req, res) => {
  hits++;
  answer(req, res);
});
let base = '';
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);

const json =
  (body: string, headers: Record<string, string> = {}) =>
  (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end(body);
  };

/** A key set with no cooldown (the verifier's least is 1 s), recording what it reports. */
function remote(extra: Partial<RemoteKeySetOptions> = {}) {
  const seen = { rings: [] as KeyRing[], reports: [] as JwksRefresh[], errors: [] as Error[] };
  const set = new RemoteKeySet({
    uri: new URL(`${base}/jwks.json`),
    timeout: 300,
    cooldown: 0,
    maxAge: 60_000,
    algorithms: ASYMMETRIC,
    onKeys: (ring, report) => {
      seen.rings.push(ring);
      seen.reports.push(report);
    },
    onError: (error) => seen.errors.push(error),
    ...extra,
  });
  return { set, seen };
}

describe('RemoteKeySet (jose fetches, our limits and schedule)', () => {
  it('loads a set, and keeps the last good keys through every kind of bad answer', async () => {
    const { set, seen } = remote();
    answer = json(goodSet);
    expect(await set.refresh()).toBe(true);
    expect(seen.reports[0]).toEqual({ kids: ['good'], rejected: [] });
    expect(set.stale).toBe(false);

    const padding = (bytes: number) => JSON.stringify({ keys: [good], pad: 'x'.repeat(bytes) });
    const bad: [string, (req: IncomingMessage, res: ServerResponse) => void, RegExp][] = [
      ['declared too large', json(padding(MAX_JWKS_BYTES)), /larger than 262144 bytes/],
      [
        'streamed too large, no Content-Length',
        (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          // Chunked: 64 KiB at a time, never announced.
          const chunk = 'x'.repeat(64 * 1024);
          res.write('{"keys":[],"pad":"');
          const timer = setInterval(() => {
            if (!res.write(chunk) && res.destroyed) clearInterval(timer);
          }, 1);
          res.on('close', () => clearInterval(timer));
        },
        /larger than 262144 bytes/,
      ],
      ['empty', json(''), /not valid JSON/],
      ['not JSON', json('nope'), /not valid JSON/],
      ['null', json('null'), /not a JWK Set/],
      ['an array', json('[]'), /not a JWK Set/],
      ['keys not an array', json('{"keys":{}}'), /not a JWK Set/],
      ['a key that is not an object', json('{"keys":[1]}'), /not a JWK Set/],
      ['no usable key', json('{"keys":[]}'), /no usable signing key/],
      [
        'HTTP 500',
        (_req, res) => {
          res.writeHead(500);
          res.end(goodSet);
        },
        /answered HTTP 500/,
      ],
      [
        'HTTP 204',
        (_req, res) => {
          res.writeHead(204);
          res.end();
        },
        /answered HTTP 204/,
      ],
      [
        'a redirect, even to a good set (never followed)',
        (_req, res) => {
          res.writeHead(302, { location: `${base}/elsewhere.json` });
          res.end();
        },
        /answered HTTP 302/,
      ],
      [
        'headers, then a body that never ends',
        (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"keys":');
        },
        /no answer within 300 ms/,
      ],
      ['no answer at all', () => {}, /no answer within 300 ms/],
    ];
    for (const [label, handler, reason] of bad) {
      answer = handler;
      const started = Date.now();
      expect(await set.refresh(), label).toBe(false);
      expect(Date.now() - started, label).toBeLessThan(2000);
      const error = seen.errors.at(-1)!;
      expect(error.message, label).toMatch(/could not load the JWKS .* keeping the last good keys/);
      expect(error.message, label).toMatch(reason);
    }
    expect(seen.errors).toHaveLength(bad.length);
    // Only the first load produced a ring; the verifier keeps using it.
    expect(seen.rings).toHaveLength(1);
    expect(seen.rings[0]!.find('good', 'ES256')).toBeDefined();

    // Just under the limit is fine.
    answer = json(padding(MAX_JWKS_BYTES - 200));
    expect(await set.refresh()).toBe(true);
    expect(seen.rings).toHaveLength(2);
  });

  it('shares one fetch among concurrent callers, and starts none within the cooldown', async () => {
    const { set } = remote({ cooldown: 60_000 });
    answer = (req, res) => setTimeout(() => json(goodSet)(req, res), 50);
    hits = 0;
    const results = await Promise.all(Array.from({ length: 20 }, () => set.refresh()));
    expect(results.every(Boolean)).toBe(true);
    expect(hits).toBe(1);
    expect(set.fetches).toBe(1);
    expect(await set.refresh()).toBe(false);
    expect(hits).toBe(1);
  });

  it('counts the cooldown from the last attempt, failed ones too (a host that is down is not hammered)', async () => {
    // A port that was just free: nothing listens there.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { set, seen } = remote({
      cooldown: 60_000,
      uri: new URL(`http://127.0.0.1:${port}/jwks`),
    });
    expect(await set.refresh()).toBe(false);
    for (let i = 0; i < 50; i++) expect(await set.refresh()).toBe(false);
    expect(set.fetches).toBe(1);
    expect(seen.errors).toHaveLength(1);
    expect(seen.errors[0]!.message).toMatch(/ECONNREFUSED/);
    expect(set.stale).toBe(true);
  });

  it('reports stale keys after maxAge', async () => {
    const { set } = remote({ maxAge: 50 });
    answer = json(goodSet);
    expect(set.stale).toBe(true);
    await set.refresh();
    expect(set.stale).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(set.stale).toBe(true);
  });
});
