import pg from 'pg';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Auth, AuthConfigError, createAuth, postgresStore } from '../../src/index.js';
import { LOCK_NAMESPACE } from '../../src/stores/postgres-schema.js';
import { decodeSegment, SECRET } from '../helpers/forge.js';
import { serve, type Served } from '../helpers/http.js';
import { idApp, Load, send, statusCounts } from '../helpers/load.js';
import { dropSchema, pgUrl, testPool, uniqueSchema } from '../helpers/postgres.js';
import { PostgresServer } from '../helpers/postgres-server.js';

/*
 * The PostgreSQL store against real servers: the machine's (in schemas of this file's own,
 * dropped at the end) and, for the outage, a private cluster this file starts and stops.
 */

let pool: pg.Pool;
const schemas: string[] = [];
let auth: Auth | undefined;
let server: Served | undefined;

beforeAll(() => {
  pool = testPool();
});
afterEach(async () => {
  await server?.close();
  await auth?.close();
  server = auth = undefined;
});
afterAll(async () => {
  for (const schema of schemas) await dropSchema(pool, schema);
  await pool.end();
});

function schema(): string {
  const name = uniqueSchema();
  schemas.push(name);
  return name;
}

describe('PostgreSQL store: schema', () => {
  it('creates nothing until migrate(); migrate() is idempotent and makes the table and index', async () => {
    const s = schema();
    const store = postgresStore(pool, { schema: s, table: 'Sessions', pruneInterval: 0 });
    const tables = async () =>
      (
        await pool.query(
          `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`,
          [s],
        )
      ).rows.map((r: { tablename: string }) => r.tablename);
    expect(await tables()).toEqual([]);
    await Promise.all([store.migrate(), store.migrate()]);
    await store.migrate();
    expect(await tables()).toEqual(['Sessions']);
    const indexes = (
      await pool.query(`SELECT indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`, [
        s,
      ])
    ).rows.map((r: { indexdef: string }) => r.indexdef);
    expect(indexes.join('\n')).toContain('(user_id, session_id)');
    expect(indexes.join('\n')).toContain('(expires_at)');
    expect(store.migrationSql()).toContain(`CREATE TABLE IF NOT EXISTS "${s}"."Sessions"`);
    await store.close();
  });

  it('refuses a schema or table name that is not a plain identifier, and a bad connection', () => {
    for (const table of ['x; DROP TABLE users', 'a"b', '', '1abc', 'a'.repeat(64), 'a'.repeat(49)])
      expect(() => postgresStore(pool, { table })).toThrow(AuthConfigError);
    expect(() => postgresStore(pool, { schema: 'public.x' })).toThrow(AuthConfigError);
    expect(() => postgresStore(pool, { timeout: 0 })).toThrow(AuthConfigError);
    expect(() => postgresStore('mysql://localhost/x')).toThrow(AuthConfigError);
    expect(() => postgresStore(42 as unknown as string)).toThrow(AuthConfigError);
  });

  it('refuses a pg.Client (one connection, or one checked out of a pool) up front: pass a pg.Pool', async () => {
    const refusal = (connection: unknown): unknown => {
      try {
        postgresStore(connection as pg.Pool, { schema: schema(), pruneInterval: 0 });
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const client = new pg.Client({ connectionString: pgUrl() });
    client.on('error', () => {});
    await client.connect();
    const checkedOut = await pool.connect();
    try {
      for (const connection of [client, checkedOut, new pg.Client({ connectionString: pgUrl() })]) {
        const error = refusal(connection);
        expect(error).toBeInstanceOf(AuthConfigError);
        expect(error).toMatchObject({
          code: 'invalid_option',
          option: 'postgresStore.connection',
          message: expect.stringContaining('pass a pg.Pool'),
        });
      }
      // A pool still works.
      const s = schema();
      const store = postgresStore(pool, { schema: s, pruneInterval: 0 });
      await store.migrate();
      expect(await store.list('nobody', Date.now())).toEqual([]);
      await store.close();
    } finally {
      checkedOut.release();
      await client.end();
    }
  });

  it('a missing table answers 503 store_unavailable and warns once how to create it', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? '');
    process.on('warning', onWarning);
    try {
      auth = createAuth({
        secret: SECRET,
        store: postgresStore(pool, { schema: schema(), pruneInterval: 0 }),
      });
      for (let i = 0; i < 2; i++)
        await expect(auth.generateTokens({ id: 'u1' })).rejects.toMatchObject({
          code: 'store_unavailable',
          status: 503,
        });
      await sleep(10);
      expect(warnings.filter((c) => c === 'KOA_JWT_REDIS_PG_NO_TABLE')).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('every hot query can use an index', async () => {
    const s = schema();
    const store = postgresStore(pool, { schema: s, pruneInterval: 0 });
    await store.migrate();
    const t = `"${s}"."auth_sessions"`;
    const client = await pool.connect();
    try {
      await client.query('SET enable_seqscan = off');
      const plans: Record<string, string> = {};
      for (const [name, sql] of Object.entries({
        isLive: `SELECT 1 FROM ${t} WHERE user_id = 'u' AND session_id = 's' AND expires_at > 0`,
        list: `SELECT * FROM ${t} WHERE user_id = 'u' AND expires_at > 0 ORDER BY created_at`,
        rotate: `UPDATE ${t} SET jti = 'n' WHERE user_id = 'u' AND session_id = 's' AND jti = 'o'`,
        revokeAll: `DELETE FROM ${t} WHERE user_id = 'u'`,
        prune: `SELECT ctid FROM ${t} WHERE expires_at <= 1000 LIMIT 1000`,
      })) {
        const rows = (await client.query(`EXPLAIN ${sql}`)).rows as { 'QUERY PLAN': string }[];
        plans[name] = rows.map((r) => r['QUERY PLAN']).join(' ');
      }
      for (const [name, plan] of Object.entries(plans))
        expect(plan, name).toMatch(/Index (Only )?Scan|Bitmap Index Scan/);
    } finally {
      client.release();
      await store.close();
    }
  });

  it('the sweep deletes expired sessions on its interval', async () => {
    const s = schema();
    const store = postgresStore(pool, { schema: s, pruneInterval: 1 });
    await store.migrate();
    const now = Date.now();
    await store.create(
      'u',
      { sessionId: 'a', jti: 'j', now, expiresAt: now + 50, ip: '', userAgent: '' },
      0,
    );
    const count = async () =>
      Number(
        (await pool.query(`SELECT count(*) AS n FROM "${s}"."auth_sessions"`)).rows[0].n as string,
      );
    expect(await count()).toBe(1);
    const deadline = Date.now() + 5000;
    while ((await count()) > 0 && Date.now() < deadline) await sleep(100);
    expect(await count()).toBe(0);
    await store.close();
  });

  it('a locked table (a database that does not answer) gives 503 within the timeout, then recovers', async () => {
    const s = schema();
    const store = postgresStore(pool, { schema: s, timeout: 300, pruneInterval: 0 });
    await store.migrate();
    auth = createAuth({ secret: SECRET, store });
    const pair = await auth.generateTokens({ id: 'locked' });
    const locker = await pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${s}"."auth_sessions" IN ACCESS EXCLUSIVE MODE`);
      const started = Date.now();
      const results = await Promise.allSettled([
        auth.generateTokens({ id: 'locked' }),
        auth.refreshTokens(pair.refresh_token),
        auth.listSessions('locked'),
      ]);
      const elapsed = Date.now() - started;
      for (const r of results)
        expect(r.status === 'rejected' && (r.reason as { code: string }).code).toBe(
          'store_unavailable',
        );
      // 300 ms timeout; a generous margin for a loaded machine.
      expect(elapsed).toBeLessThan(1500);
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    // The refresh may or may not have run before the lock: either way the store answers again.
    expect(await auth.listSessions('locked')).not.toHaveLength(0);
    await auth.generateTokens({ id: 'locked' });
  });

  it("migrate() is bounded, by its own timeout, on the app's own pool too", async () => {
    // A server that accepts and never answers: the pool has no timeout of its own.
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const sockets: net.Socket[] = [];
    silent.on('connection', (socket) => sockets.push(socket));
    const { port } = silent.address() as net.AddressInfo;
    const mute = new pg.Pool({ host: '127.0.0.1', port, user: 'x', database: 'x' });
    mute.on('error', () => {});
    // And a table another transaction holds locked, on a pool with no statement_timeout.
    const own = new pg.Pool({ connectionString: pgUrl() });
    const s = schema();
    await postgresStore(pool, { schema: s, pruneInterval: 0 }).migrate();
    const locker = await pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${s}"."auth_sessions" IN ACCESS EXCLUSIVE MODE`);
      for (const target of [mute, own]) {
        // The store's own timeout is a request's; migrate has its own (30 s unless given).
        const store = postgresStore(target, { schema: s, timeout: 5000, pruneInterval: 0 });
        const started = Date.now();
        await expect(store.migrate({ timeout: 300 })).rejects.toThrow(
          /did not answer within 300 ms/,
        );
        // 300 ms timeout; a generous margin for a loaded machine.
        expect(Date.now() - started).toBeLessThan(1500);
      }
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
      for (const socket of sockets) socket.destroy();
      silent.close();
      await own.end();
      await mute.end().catch(() => {});
    }
    const store = postgresStore(pool, { schema: s, pruneInterval: 0 });
    for (const options of [{ timeout: 0 }, { timout: 300 }, null])
      await expect(store.migrate(options as never)).rejects.toBeInstanceOf(AuthConfigError);
    // The table is as it was, and a migrate() on a free table goes through.
    await postgresStore(pool, { schema: s, pruneInterval: 0 }).migrate();
  });

  it('a login that timed out never commits later, though its transaction outlasts the call', async () => {
    const s = schema();
    // The app's own pool: one connection, and no server-side statement timeout.
    const own = new pg.Pool({ connectionString: pgUrl(), max: 1 });
    const store = postgresStore(own, { schema: s, timeout: 600, pruneInterval: 0 });
    await store.migrate();
    auth = createAuth({ secret: SECRET, store });
    const locker = new pg.Client({ connectionString: pgUrl() });
    await locker.connect();
    const held = await own.connect();
    try {
      // The login waits for the pool's one connection, then for the user's lock (the store's
      // own): each wait is shorter than the timeout, together they are longer.
      await locker.query('SELECT pg_advisory_lock($1, hashtext($2))', [LOCK_NAMESPACE, 'late']);
      const login = auth.generateTokens({ id: 'late' });
      const outcome = login.then(
        () => 'logged in',
        (e: { code?: string }) => e.code,
      );
      // Late in the timeout, so the lock's statement (bounded by the timeout from its own start)
      // is still waiting when the lock is released, soon after the call has timed out.
      await sleep(450);
      held.release();
      expect(await outcome).toBe('store_unavailable');
      await sleep(50);
      await locker.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, 'late']);
      // The transaction goes on after the lock; give it time to commit if it were going to.
      await sleep(300);
      const rows = await pool.query(`SELECT count(*)::int AS n FROM "${s}"."auth_sessions"`);
      expect(rows.rows[0]).toEqual({ n: 0 });
      // It rolled back at its next step, not on an error (the lock's statement timing out),
      // which would have destroyed the connection: it is back in the pool, in no transaction.
      expect(own.totalCount).toBe(1);
      expect(await auth.listSessions('late')).toEqual([]);
      await auth.generateTokens({ id: 'late' });
      expect(await auth.listSessions('late')).toHaveLength(1);
    } finally {
      await locker.end();
      await auth.close();
      auth = undefined;
      await own.end();
    }
  });
});

describe('PostgreSQL store: a private server stopped under load', () => {
  let pgServer: PostgresServer | undefined;
  afterAll(async () => {
    await pgServer?.stop();
  });

  it('answers only 200/401/503 while stopped, recovers without a restart, and never hands out an unrecorded token', async () => {
    pgServer = await PostgresServer.start();
    const store = postgresStore(pgServer.url, { pruneInterval: 0 });
    await store.migrate();
    auth = createAuth({ secret: SECRET, store });
    server = await serve(idApp(auth));
    const warm = await send(server.url, '/login', { body: { id: 'warm' } }, 5000);
    expect(warm.status).toBe(200);
    const load = new Load(server.url, (i) => `pg-user-${i}`, {
      clients: 10,
      boundMs: 5000,
      maxRequests: 4000,
      maxMs: 25_000,
    });
    await sleep(1500);
    pgServer.stopServer();
    const stoppedAt = Date.now();
    await sleep(2000);
    pgServer.startServer();
    const restartedAt = Date.now();
    const recovered = await load.recovered(restartedAt, 10_000);
    await load.stop();
    const counts = statusCounts(load.replies);
    console.info(
      `PostgreSQL stopped under load: ${load.replies.length} requests ${JSON.stringify(counts)}`,
    );
    expect(recovered, JSON.stringify(counts)).toBe(true);
    const bad = load.replies.filter(
      (r) => r.failure !== undefined || ![200, 401, 503].includes(r.status),
    );
    expect(bad, JSON.stringify(counts)).toEqual([]);
    expect(load.replies.some((r) => r.status === 503 && r.sentAt >= stoppedAt)).toBe(true);
    for (const r of load.replies.filter((x) => x.status === 503))
      expect(r.body?.error).toBe('store_unavailable');
    // Every refresh token a 200 handed out and its client never sent back is the live jti of its session.
    const check = new pg.Client({ connectionString: pgServer.url });
    await check.connect();
    try {
      const missing: string[] = [];
      for (const t of load.issued) {
        if (t.presented) continue;
        const row = await check.query(
          'SELECT jti FROM public.auth_sessions WHERE user_id = $1 AND session_id = $2',
          [t.sub, t.sid],
        );
        if (row.rows[0]?.jti !== t.jti) missing.push(`${t.sub}/${t.sid}`);
      }
      expect(missing).toEqual([]);
      expect(load.issued.filter((t) => !t.presented).length).toBeGreaterThan(0);
    } finally {
      await check.end();
    }
    expect(decodeSegment(warm.body.refresh_token, 1)).toHaveProperty('jti');
  }, 90_000);
});
