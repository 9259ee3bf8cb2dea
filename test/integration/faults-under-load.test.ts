import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type Auth, createAuth } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { serve, type Served } from '../helpers/http.js';
import {
  idApp,
  type Issued,
  Load,
  type LoadOptions,
  liveJti,
  send,
  statusCounts,
  storeViolations,
} from '../helpers/load.js';
import { RedisServer, redisServerMajor } from '../helpers/redis-server.js';

/*
 * Faults injected into a redis-server this file starts and owns, while virtual clients keep
 * logging in, refreshing and calling a protected route. The bound on every request is the one the
 * issue states: an answer (never a 500) within 2 s, with the default storeTimeout of 1 s.
 */

const BOUND_MS = 2000;
const LOAD: LoadOptions = { clients: 20, boundMs: 5000, maxRequests: 6000, maxMs: 20_000 };
const PREFIX = 'faults:';

let redis: RedisServer;
let auth: Auth | undefined;
let server: Served | undefined;
let admin: Redis | undefined;
let injected: Redis | undefined;

afterEach(async () => {
  await server?.close();
  await auth?.close();
  admin?.disconnect();
  injected?.disconnect();
  server = auth = admin = injected = undefined;
  await redis.stop();
});

async function start(
  redisOption: () => string | Redis,
  extraArgs: string[] = [],
): Promise<{ load: Load; unavailable: string[] }> {
  redis = await RedisServer.start(extraArgs);
  admin = new Redis(redis.url, { lazyConnect: true }).on('error', () => {});
  auth = createAuth({ secret: SECRET, redis: redisOption(), keyPrefix: PREFIX });
  const unavailable: string[] = [];
  auth.on('store_unavailable', ({ operation }) => unavailable.push(operation));
  server = await serve(idApp(auth));
  // Warm up (connection, script cache, JIT) so that the load measures faults, not a cold start.
  const warm = await send(server.url, '/login', { body: { id: 'warm-up' } }, LOAD.boundMs);
  expect(warm.status).toBe(200);
  expect(
    (await send(server.url, '/me', { token: warm.body.access_token }, LOAD.boundMs)).status,
  ).toBe(200);
  const load = new Load(server.url, (i) => `user-${i}`, LOAD);
  return { load, unavailable };
}

/** Redis 7 disables DEBUG unless told otherwise; older servers allow it and know no such option. */
function debugCommandArgs(): string[] {
  return redisServerMajor() >= 7 ? ['--enable-debug-command', 'yes'] : [];
}

/** Only 200/401/503, nothing hung or failed at the socket, and every answer within the bound. */
function expectBoundedAnswers(load: Load, name: string): void {
  const counts = statusCounts(load.replies);
  console.info(
    `${name}: ${load.replies.length} requests, slowest ${Math.max(...load.replies.map((r) => r.ms))} ms ${JSON.stringify(counts)}`,
  );
  const bad = load.replies.filter(
    (r) => r.failure !== undefined || ![200, 401, 503].includes(r.status),
  );
  expect(bad, JSON.stringify(counts)).toEqual([]);
  const slowest = Math.max(...load.replies.map((r) => r.ms));
  expect(slowest, `slowest answer ${slowest} ms; ${JSON.stringify(counts)}`).toBeLessThan(BOUND_MS);
  for (const r of load.replies.filter((x) => x.status === 503))
    expect(r.body?.error).toBe('store_unavailable');
  for (const r of load.replies.filter((x) => x.status === 401))
    expect(r.body?.error).toMatch(/^(token_revoked|refresh_reused)$/);
}

/**
 * Every refresh token in `tokens` that its client never sent back must still be the live UUID of
 * its family in Redis: a 200 never hands out a token Redis did not record.
 */
async function expectRecorded(tokens: Issued[]): Promise<void> {
  const missing: string[] = [];
  for (const t of tokens) {
    if (t.presented) continue;
    if ((await liveJti(admin!, PREFIX, t.sub, t.sid)) !== t.jti)
      missing.push(`client ${t.client} family ${t.sid}`);
  }
  expect(missing).toEqual([]);
}

/**
 * One live chain per family: every refresh token of a family that still works carries the same
 * id (a retry within the grace period is answered with the live id, so two may work).
 */
async function expectOneLivePerFamily(tokens: Issued[]): Promise<void> {
  const live = new Map<string, Set<string>>();
  for (const t of tokens) {
    if (await auth!.checkRefreshToken(t.token))
      live.set(t.sid, (live.get(t.sid) ?? new Set()).add(t.jti));
  }
  for (const [sid, jtis] of live) expect(jtis.size, sid).toBe(1);
}

describe('faults under load (a redis-server this file owns)', () => {
  for (const [name, option] of [
    ['the library’s own client (URL)', (url: string) => url],
    [
      'an injected ioredis client with default options',
      (url: string) => (injected = new Redis(url).on('error', () => {})),
    ],
  ] as const) {
    it(`SIGKILL under load, then an empty restart: bounded answers, recovery, old tokens dead — ${name}`, async () => {
      const { load, unavailable } = await start(() => option(redis.url));
      await sleep(600);
      const killedAt = Date.now();
      await redis.kill();
      await sleep(2000);
      const restartingAt = Date.now();
      await redis.restart();
      const restartedAt = Date.now();
      const recovered = await load.recovered(restartedAt, 10_000);
      await sleep(400);
      await load.stop();

      expect(recovered, JSON.stringify(statusCounts(load.replies))).toBe(true);
      expectBoundedAnswers(load, `kill, ${name}`);
      // Answers given while Redis was down (past the few ms in which the crash is noticed) are all 503.
      const during = load.replies.filter(
        (r) => r.sentAt + r.ms > killedAt + 200 && r.sentAt + r.ms < restartingAt,
      );
      expect(during.length).toBeGreaterThan(0);
      expect(during.every((r) => r.status === 503)).toBe(true);
      expect(unavailable.length).toBeGreaterThan(0);

      // Everything handed out before the crash lived only in the lost Redis: all rejected now.
      const before = load.issued.filter((t) => t.receivedAt < killedAt);
      expect(before.length).toBeGreaterThan(0);
      for (const t of before) expect(await auth!.checkRefreshToken(t.token)).toBe(false);
      const lastBefore = new Map(before.map((t) => [t.client, t]));
      for (const t of lastBefore.values()) {
        const reply = await send(
          server!.url,
          '/refresh',
          { body: { refresh_token: t.token } },
          BOUND_MS,
        );
        expect(reply.status).toBe(401);
      }
      // Everything handed out by requests sent after the restart was recorded.
      const after = load.issued.filter((t) => t.sentAt > restartedAt);
      expect(after.length).toBeGreaterThan(0);
      await expectRecorded(after);
      await expectOneLivePerFamily(load.issued);
      expect(await storeViolations(admin!, PREFIX)).toEqual([]);
    });
  }

  it('paused longer than the command timeout under load (SIGSTOP, then DEBUG SLEEP): bounded answers, nothing lost, recovery', async () => {
    const { load } = await start(() => redis.url, debugCommandArgs());
    await sleep(500);
    redis.pause();
    try {
      await sleep(1800);
    } finally {
      redis.resume();
    }
    await sleep(500);
    // DEBUG SLEEP blocks the server itself; the admin connection waits for it, nothing else does.
    const sleepingAt = Date.now();
    await admin!.call('DEBUG', 'SLEEP', '1.8');
    const resumedAt = Date.now();
    const recovered = await load.recovered(resumedAt, 10_000);
    await sleep(400);
    await load.stop();

    expect(recovered, JSON.stringify(statusCounts(load.replies))).toBe(true);
    expectBoundedAnswers(load, 'pause');
    // Both pauses were felt: 503s during the SIGSTOP and during DEBUG SLEEP.
    expect(
      load.replies.filter((r) => r.status === 503 && r.sentAt < sleepingAt).length,
    ).toBeGreaterThan(0);
    expect(
      load.replies.filter((r) => r.status === 503 && r.sentAt >= sleepingAt).length,
    ).toBeGreaterThan(0);
    // No data was lost, so every token any 200 handed out is live, unless its client sent it back.
    await expectRecorded(load.issued);
    await expectOneLivePerFamily(load.issued);
    expect(await storeViolations(admin!, PREFIX)).toEqual([]);
    // A login that timed out may still be recorded once Redis resumes: a session no client holds
    // (harmless, it expires; documented under Operations). Reported, not asserted.
    const handedOut = new Set(load.issued.map((t) => t.sid));
    let unheld = 0;
    for (const key of await admin!.keys(`${PREFIX}*`))
      unheld += (await admin!.hkeys(key)).filter(
        (sid) => !sid.includes(':') && !handedOut.has(sid),
      ).length;
    console.info(
      `pause: ${unheld} recorded sessions were never handed out (logins answered 503 before Redis ran them)`,
    );
  });
});
