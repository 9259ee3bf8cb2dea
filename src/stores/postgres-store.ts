import type * as pg from 'pg';
import { AuthConfigError } from '../errors.js';
import { onlyKnown, plainObject, warn, wholeNumber } from '../config/validate.js';
import { bounded, StoreTimeoutError } from './bounded.js';
import { trustStore } from './checked-store.js';
import { isPool, type PostgresConnection, resolvePool } from './postgres-connection.js';
import {
  checkIdentifiers,
  COLUMNS,
  LOCK_NAMESPACE,
  postgresMigrationSql,
  quote,
  type Row,
  toRecord,
} from './postgres-schema.js';
import type {
  NewSession,
  Rotation,
  RotationResult,
  SessionRecord,
  SessionStore,
} from './session-store.js';

/** Options of {@link postgresStore}. */
export interface PostgresStoreOptions {
  /** Schema of the sessions table. @default 'public' */
  schema?: string | undefined;
  /** Name of the sessions table. @default 'auth_sessions' */
  table?: string | undefined;
  /**
   * Longest wait for PostgreSQL per call, in ms (connection, query and a timer of the store's
   * own); past it the request gets 503 `store_unavailable`. @default 1000
   */
  timeout?: number | undefined;
  /**
   * Seconds between two sweeps that delete expired sessions of all users (`store.prune()`); 0
   * turns the sweep off (then call `prune()` yourself, e.g. from a cron job). A user's own
   * expired sessions are also deleted whenever they log in. @default 600
   */
  pruneInterval?: number | undefined;
}

/** What {@link postgresStore} returns: a SessionStore plus its schema management. */
export interface PostgresSessionStore extends SessionStore {
  /**
   * Creates the table and its indexes when they do not exist (`CREATE … IF NOT EXISTS`, in one
   * transaction); safe to run at every start. Nothing is created unless you call it. Bounded by
   * `timeout` ms (default 30 000, not the store's per-call timeout: an index built on a large
   * table, or a remote database's first connection, may take longer than a request should).
   */
  migrate(options?: { timeout?: number | undefined }): Promise<void>;
  /** The SQL `migrate()` runs, to apply with your own migration tool instead. */
  migrationSql(): string;
  prune(now?: number): Promise<number>;
}

/** Rows deleted per statement by a sweep, so a backlog never holds locks for long. */
const PRUNE_BATCH = 1000;

const ignore = (): void => {};

/**
 * A one-row subquery whose `at` is a rotation's time. With a grace window (the SQL parameter
 * `grace`, ms, above 0): when the statement runs, by the server's clock, or the `now` it was sent
 * with (the parameter `now`, epoch ms) when the app's clock is ahead. It stamps the rotation and
 * judges a replaced jti against the window (expiries are judged at `now`): a rotation that waited
 * for a pooled connection or a frozen server, after the app had answered 503, is stamped when it
 * ran, not when it was sent (see SessionStore). Without a window, `now`.
 */
const rotationTime = (now: string, grace: string): string =>
  `(SELECT CASE WHEN ${grace}::bigint > 0
     THEN GREATEST(${now}::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
     ELSE ${now}::bigint END AS at)`;

/**
 * PostgreSQL store. Every per-request query hits the primary key (user_id, session_id); listing
 * and revoking all use its user_id prefix; the sweep uses the expires_at index. Rotation is one
 * `UPDATE … WHERE jti = old RETURNING`, so of any number of concurrent rotations exactly one
 * matches; a login takes a per-user advisory lock so the session cap holds under concurrency.
 */
class PostgresStore implements PostgresSessionStore {
  private readonly table: string;
  private readonly sweeper: NodeJS.Timeout | undefined;
  private missingTableWarned = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly ownsPool: boolean,
    private readonly schema: string,
    private readonly tableName: string,
    private readonly timeout: number,
    pruneInterval: number,
  ) {
    trustStore(this);
    this.table = `${quote(schema)}.${quote(tableName)}`;
    if (pruneInterval > 0) {
      this.sweeper = setInterval(() => {
        this.prune().catch(() => {});
      }, pruneInterval * 1000);
      this.sweeper.unref();
    }
  }

  migrationSql(): string {
    return postgresMigrationSql(this.schema, this.tableName);
  }

  async migrate(options?: { timeout?: number | undefined }): Promise<void> {
    const given = plainObject('migrate options', options);
    onlyKnown('migrate', given, ['timeout']);
    const ms = wholeNumber('migrate.timeout', given.timeout ?? 30_000, 10, 3_600_000);
    // Bounded, so a start-up never waits forever on a server that accepts and does not answer,
    // or on a lock another transaction holds on the table; by its own limit, not a request's.
    await this.transaction(async (run) => {
      // The pool's statement_timeout (the store's timeout, on a pool it opened) is a request's.
      await run(`SET LOCAL statement_timeout = ${ms}`);
      // Two processes migrating at once would race on CREATE … IF NOT EXISTS.
      await run('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_NAMESPACE]);
      await run(this.migrationSql());
    }, ms);
  }

  /** One statement, bounded; a missing table is reported once with the fix. */
  private query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.bounded(
      this.pool.query<R>({ text, values, query_timeout: this.timeout } as pg.QueryConfig),
    );
  }

  private bounded<T>(call: Promise<T>, ms = this.timeout): Promise<T> {
    return bounded(
      call.catch((error: unknown) => {
        this.checkMissingTable(error);
        throw error;
      }),
      ms,
      'PostgreSQL',
    );
  }

  private checkMissingTable(error: unknown): void {
    if ((error as { code?: unknown }).code === '42P01' && !this.missingTableWarned) {
      this.missingTableWarned = true;
      warn(
        'KOA_JWT_REDIS_PG_NO_TABLE',
        `the sessions table ${this.table} does not exist; run \`await store.migrate()\` once (or apply store.migrationSql() with your migration tool).`,
      );
    }
  }

  async create(userId: string, s: NewSession, maxSessions: number): Promise<void> {
    await this.transaction(async (run) => {
      // Serialises this user's logins, so concurrent ones cannot each keep `maxSessions` others.
      await run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, userId]);
      await run(
        `INSERT INTO ${this.table} (user_id, ${COLUMNS})
         VALUES ($1, $2, $3, '', 0, $4, $4, $5, $6, $7)`,
        [userId, s.sessionId, s.jti, s.now, s.expiresAt, s.ip, s.userAgent],
      );
      // The user's expired sessions go, then any beyond the cap: the ones that expire first,
      // never the one just created (ordered first, it is always within the cap).
      await run(
        `DELETE FROM ${this.table} WHERE user_id = $1 AND (expires_at <= $2 OR ($3::int > 0 AND session_id IN (
           SELECT session_id FROM ${this.table} WHERE user_id = $1 AND expires_at > $2
           ORDER BY session_id = $4 DESC, expires_at DESC, created_at DESC OFFSET $3)))`,
        [userId, s.now, maxSessions, s.sessionId],
      );
    });
  }

  /**
   * Runs `steps` in one transaction on a connection of its own, bounded by `ms` (the store's
   * timeout unless given). Each step is bounded on its own too, so the whole can outlast the call
   * (a wait for a connection, then for a lock): once the caller has its timeout, the transaction
   * rolls back at its next step instead of committing what the caller was told failed (a session
   * whose tokens nobody received).
   */
  private async transaction(
    steps: (run: (text: string, values?: unknown[]) => Promise<unknown>) => Promise<void>,
    ms = this.timeout,
  ): Promise<void> {
    const call = { late: false, ms };
    try {
      await this.bounded(this.runTransaction(steps, call), ms);
    } catch (error) {
      if (error instanceof StoreTimeoutError) call.late = true;
      throw error;
    }
  }

  private async runTransaction(
    steps: (run: (text: string, values?: unknown[]) => Promise<unknown>) => Promise<void>,
    call: { late: boolean; ms: number },
  ): Promise<void> {
    const client = await this.pool.connect();
    // A connection that dies between two statements of the transaction emits 'error' on the
    // checked-out client; the failing statement reports it, so the event itself is ignored.
    client.on('error', ignore);
    let failed: unknown;
    try {
      const run = async (text: string, values?: unknown[]) => {
        if (call.late) throw new StoreTimeoutError('PostgreSQL', call.ms);
        return client.query({ text, values, query_timeout: call.ms } as pg.QueryConfig);
      };
      await run('BEGIN');
      await steps(run);
      await run('COMMIT');
    } catch (error) {
      failed = error;
      // Bounded too: a connection that stalls here is destroyed, not kept out of the pool.
      await client
        .query({ text: 'ROLLBACK', query_timeout: this.timeout } as pg.QueryConfig)
        .catch((rollbackError: unknown) => {
          failed = rollbackError;
        });
      throw error;
    } finally {
      client.off('error', ignore);
      // A connection that failed mid-transaction is not handed to the next caller; one rolled
      // back cleanly because the call was late is sound.
      client.release(
        failed instanceof Error && !(failed instanceof StoreTimeoutError) ? failed : undefined,
      );
    }
  }

  async rotate(userId: string, r: Rotation): Promise<RotationResult> {
    // The one atomic step: of any number of concurrent rotations of oldJti, one row update wins.
    const updated = await this.query(
      `UPDATE ${this.table}
       SET jti = $3, previous_jti = $4, rotated_at = kjr_rotation.at, last_used_at = kjr_rotation.at,
         expires_at = $6
       FROM ${rotationTime('$5', '$8')} AS kjr_rotation
       WHERE user_id = $1 AND session_id = $2 AND jti = $7 AND expires_at > $5::bigint
       RETURNING 1`,
      [
        userId,
        r.sessionId,
        r.newJti,
        r.graceMs > 0 && r.newJti !== r.oldJti ? r.oldJti : '',
        r.now,
        r.expiresAt,
        r.oldJti,
        r.graceMs,
      ],
    );
    if (updated.rowCount === 1) return 'rotated';
    // A stale jti: within the grace window it is answered, otherwise the session is ended, in one
    // statement that only deletes a live session whose current jti is not the one presented.
    // Concurrent stale ones may all read the row; only the one whose delete removed it is
    // `reused` (so theft is reported once), the others find it gone (`missing`).
    const outcome = await this.query<{ superseded: boolean; ended: boolean }>(
      `WITH kjr_rotation AS ${rotationTime('$4', '$5')}, current AS (
         SELECT previous_jti = $3 AND $5::bigint > 0
           AND kjr_rotation.at - rotated_at <= $5::bigint AS superseded
         FROM ${this.table}, kjr_rotation
         WHERE user_id = $1 AND session_id = $2 AND expires_at > $4::bigint AND jti <> $3
       ), ended AS (
         DELETE FROM ${this.table}
         WHERE user_id = $1 AND session_id = $2 AND jti <> $3
           AND NOT EXISTS (SELECT 1 FROM current WHERE superseded)
           AND EXISTS (SELECT 1 FROM current)
         RETURNING 1
       )
       SELECT superseded, EXISTS (SELECT 1 FROM ended) AS ended FROM current`,
      [userId, r.sessionId, r.oldJti, r.now, r.graceMs],
    );
    const row = outcome.rows[0];
    if (!row) return 'missing';
    if (row.superseded) return 'superseded';
    return row.ended ? 'reused' : 'missing';
  }

  async get(userId: string, sessionId: string, now: number): Promise<SessionRecord | undefined> {
    const result = await this.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.table}
       WHERE user_id = $1 AND session_id = $2 AND expires_at > $3`,
      [userId, sessionId, now],
    );
    const row = result.rows[0];
    return row ? toRecord(row) : undefined;
  }

  async isLive(userId: string, sessionId: string, now: number): Promise<boolean> {
    const result = await this.query(
      `SELECT 1 FROM ${this.table} WHERE user_id = $1 AND session_id = $2 AND expires_at > $3`,
      [userId, sessionId, now],
    );
    return result.rowCount === 1;
  }

  async revoke(userId: string, sessionId: string): Promise<boolean> {
    // An expired row is deleted too, but only a live one counts as ended.
    const result = await this.query<{ live: boolean }>(
      `DELETE FROM ${this.table} WHERE user_id = $1 AND session_id = $2
       RETURNING expires_at > $3 AS live`,
      [userId, sessionId, Date.now()],
    );
    return result.rows[0]?.live === true;
  }

  async revokeAll(userId: string, now: number): Promise<number> {
    const result = await this.query<{ live: string }>(
      `WITH ended AS (DELETE FROM ${this.table} WHERE user_id = $1 RETURNING expires_at)
       SELECT count(*) FILTER (WHERE expires_at > $2) AS live FROM ended`,
      [userId, now],
    );
    return Number(result.rows[0]?.live ?? 0);
  }

  async list(userId: string, now: number): Promise<SessionRecord[]> {
    const result = await this.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.table} WHERE user_id = $1 AND expires_at > $2
       ORDER BY created_at, session_id`,
      [userId, now],
    );
    return result.rows.map(toRecord);
  }

  async prune(now = Date.now()): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await this.query(
        `DELETE FROM ${this.table} WHERE ctid IN (
           SELECT ctid FROM ${this.table} WHERE expires_at <= $1 LIMIT ${PRUNE_BATCH})`,
        [now],
      );
      total += result.rowCount ?? 0;
      if ((result.rowCount ?? 0) < PRUNE_BATCH) return total;
    }
  }

  async ping(): Promise<void> {
    // Ready means the table is there too, not only the server.
    await this.query(`SELECT 1 FROM ${this.table} LIMIT 1`, []);
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.ownsPool) await this.pool.end();
  }
}

/** The options of postgresStore(): any other name is a typo, refused. */
const POSTGRES_STORE_OPTION_NAMES = [
  'schema',
  'table',
  'timeout',
  'pruneInterval',
] as const satisfies readonly (keyof PostgresStoreOptions)[];

/**
 * The PostgreSQL session store (node-postgres). Give a `pg.Pool` (yours: the store never ends
 * it), a connection string or Pool options (the store opens a pool and `auth.close()` ends it).
 * Create the table once with `await store.migrate()` or apply `store.migrationSql()` yourself:
 * the store never creates anything on its own.
 * @example
 * const store = postgresStore(process.env.DATABASE_URL!);
 * await store.migrate();
 * const auth = createAuth({ secret, store });
 */
export function postgresStore(
  connection: PostgresConnection,
  options: PostgresStoreOptions = {},
): PostgresSessionStore {
  // Each option is named as written, `postgresStore.timeout`; the options object as a whole, like
  // redisStore's, is `postgresStore options`.
  if (options === null || typeof options !== 'object')
    throw new AuthConfigError(
      'postgresStore options',
      'must be an object like { schema, table, timeout }',
    );
  if (isPool(options))
    throw new AuthConfigError(
      'postgresStore options',
      'is a pg Pool: the pool comes first, postgresStore(pool, { schema, table })',
    );
  onlyKnown('postgresStore', options, POSTGRES_STORE_OPTION_NAMES);
  const schema = options.schema ?? 'public';
  const table = options.table ?? 'auth_sessions';
  checkIdentifiers('postgresStore.', { schema, table });
  const timeout = wholeNumber('postgresStore.timeout', options.timeout ?? 1000, 10, 60_000);
  const pruneInterval = wholeNumber(
    'postgresStore.pruneInterval',
    options.pruneInterval ?? 600,
    0,
    86_400,
  );
  const { pool, owns } = resolvePool(connection, timeout);
  return new PostgresStore(pool, owns, schema, table, timeout, pruneInterval);
}
