import { Cluster, Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Auth, type AuthOptions, createAuth } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { serve, type Served } from '../helpers/http.js';
import { idApp, send } from '../helpers/load.js';
import { RedisCluster } from '../helpers/redis-cluster.js';
import { MASTER_NAME, SentinelSetup } from '../helpers/redis-sentinel.js';
import { RedisServer } from '../helpers/redis-server.js';

/*
 * `storeTimeout` is a hard bound: with Redis frozen (SIGSTOP, so connections stay open and
 * nothing answers), login, refresh, logout and the session check each answer 503 within
 * storeTimeout + 250 ms — for every client setup the README shows, auto-pipelining on and off —
 * and the app works again once Redis resumes.
 */

const STORE_TIMEOUT = 1000;
const BOUND_MS = STORE_TIMEOUT + 250;

let single: RedisServer;
let sentinel: SentinelSetup;
let cluster: RedisCluster;
let auth: Auth | undefined;
let served: Served | undefined;
let own: (Redis | Cluster)[] = [];

beforeAll(async () => {
  [single, sentinel, cluster] = await Promise.all([
    RedisServer.start(),
    // Sentinels that wait 30 s before calling the master down: this test freezes it, and
    // measures the timeout, not a failover.
    SentinelSetup.start({ downAfterMs: 30_000 }),
    RedisCluster.start(3),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([single?.stop(), sentinel?.stop(), cluster?.stop()]);
});

afterEach(async () => {
  await served?.close();
  await auth?.close();
  for (const client of own) client.disconnect();
  auth = served = undefined;
  own = [];
});

function mine<T extends Redis | Cluster>(client: T): T {
  client.on('error', () => {});
  own.push(client);
  return client;
}

/** Every frozen process of the setup, to SIGSTOP and SIGCONT together. */
interface Target {
  redis: () => AuthOptions['redis'];
  servers: () => Promise<RedisServer[]>;
}

const clusterNodes = (): { host: string; port: number }[] =>
  cluster.ports.map((port) => ({ host: '127.0.0.1', port }));

const setups: [string, (autoPipelining: boolean) => Target][] = [
  [
    'one node, connection options',
    (on) => ({
      redis: () => ({ host: '127.0.0.1', port: single.port, enableAutoPipelining: on }),
      servers: async () => [single],
    }),
  ],
  [
    'one node, a URL',
    (on) => ({
      redis: () => (on ? { url: single.url, enableAutoPipelining: true } : single.url),
      servers: async () => [single],
    }),
  ],
  [
    'one node, your own ioredis instance with default settings',
    (on) => ({
      redis: () => mine(new Redis(single.url, { enableAutoPipelining: on })),
      servers: async () => [single],
    }),
  ],
  [
    'Sentinel, connection options',
    (on) => ({
      redis: () => ({ sentinels: sentinel.sentinels, name: MASTER_NAME, enableAutoPipelining: on }),
      servers: async () => [sentinel.serverOn(await sentinel.masterPort())],
    }),
  ],
  [
    'Cluster, connection options',
    (on) => ({
      redis: () => ({ cluster: clusterNodes(), enableAutoPipelining: on }),
      servers: async () => cluster.nodes,
    }),
  ],
  [
    'Cluster, your own ioredis instance',
    (on) => ({
      redis: () => mine(new Cluster(clusterNodes(), { enableAutoPipelining: on })),
      servers: async () => cluster.nodes,
    }),
  ],
];

describe('storeTimeout is a hard bound on every client setup (Redis frozen with SIGSTOP)', () => {
  for (const [name, target] of setups) {
    for (const on of [false, true]) {
      it(`${name}, auto-pipelining ${on ? 'on' : 'off'}`, async () => {
        const setup = target(on);
        auth = createAuth({
          secret: SECRET,
          redis: setup.redis(),
          storeTimeout: STORE_TIMEOUT,
          keyPrefix: `frozen${on ? 1 : 0}:`,
        });
        served = await serve(idApp(auth));
        const url = served.url;
        const [a, b] = [
          await send(url, '/login', { body: { id: 'frozen-a' } }, 5000),
          await send(url, '/login', { body: { id: 'frozen-b' } }, 5000),
        ];
        expect([a.status, b.status], JSON.stringify([a.body, b.body])).toEqual([200, 200]);

        const servers = await setup.servers();
        for (const s of servers) s.pause();
        let replies;
        try {
          replies = await Promise.all([
            send(url, '/login', { body: { id: 'frozen-c' } }, 5000),
            send(url, '/me', { token: a.body.access_token }, 5000),
            send(url, '/refresh', { body: { refresh_token: a.body.refresh_token } }, 5000),
            send(url, '/logout', { body: { refresh_token: b.body.refresh_token } }, 5000),
          ]);
        } finally {
          for (const s of servers) s.resume();
        }
        const seen = replies.map((r) => `${r.path} ${r.status} in ${r.ms} ms`).join(', ');
        console.info(`frozen, ${name}, auto-pipelining ${on ? 'on' : 'off'}: ${seen}`);
        for (const r of replies) {
          expect(r.status, seen).toBe(503);
          expect(r.body?.error, seen).toBe('store_unavailable');
          expect(r.ms, seen).toBeLessThanOrEqual(BOUND_MS);
        }

        // Redis resumed: the app answers again by itself.
        const deadline = Date.now() + 10_000;
        let login;
        do {
          login = await send(url, '/login', { body: { id: 'frozen-d' } }, 5000);
          if (login.status !== 200) await sleep(100);
        } while (login.status !== 200 && Date.now() < deadline);
        expect(login.status).toBe(200);
      });
    }
  }
});

describe('a freeze longer than refreshGracePeriod (Redis frozen with SIGSTOP)', () => {
  it('keeps the session of a client that retried its refresh through it, and still ends a replay after it', async () => {
    const GRACE_S = 2;
    auth = createAuth({
      secret: SECRET,
      redis: mine(new Redis(single.url)),
      storeTimeout: 500,
      refreshGracePeriod: GRACE_S,
      keyPrefix: 'late-rotation:',
    });
    const reused: string[] = [];
    auth.on('refresh_reused', ({ sessionId }) => reused.push(sessionId));
    served = await serve(idApp(auth));
    const url = served.url;
    const login = await send(url, '/login', { body: { id: 'late-a' } }, 5000);
    expect(login.status).toBe(200);
    const refresh = (token: string) =>
      send(url, '/refresh', { body: { refresh_token: token } }, 5000);

    // The client refreshes, gets 503, and retries every half second for twice the grace period:
    // every attempt is queued in the frozen Redis, stamped with the time it was sent.
    single.pause();
    const during: number[] = [];
    try {
      const until = Date.now() + 2 * GRACE_S * 1000;
      while (Date.now() < until) {
        during.push((await refresh(login.body.refresh_token)).status);
        await sleep(250);
      }
    } finally {
      single.resume();
    }
    expect(new Set(during)).toEqual(new Set([503]));

    // Resumed: the queued attempts ran (one rotated, the rest are the same client's retries), and
    // the client's next retry gets the session's next pair, not a theft alarm.
    let after;
    const deadline = Date.now() + 10_000;
    do {
      after = await refresh(login.body.refresh_token);
      if (after.status === 503) await sleep(100);
    } while (after.status === 503 && Date.now() < deadline);
    expect([after.status, after.body?.error], JSON.stringify(after.body)).toEqual([200, undefined]);
    expect(reused).toEqual([]);
    expect((await send(url, '/me', { token: after.body.access_token }, 5000)).status).toBe(200);
    expect((await auth.listSessions('late-a')).length).toBe(1);

    // Reuse detection is intact: the same old token once the grace window has passed is theft.
    await sleep(GRACE_S * 1000 + 1200);
    const replay = await refresh(login.body.refresh_token);
    expect([replay.status, replay.body?.error]).toEqual([401, 'refresh_reused']);
    expect(reused.length).toBe(1);
    expect((await auth.listSessions('late-a')).length).toBe(0);
  });
});
