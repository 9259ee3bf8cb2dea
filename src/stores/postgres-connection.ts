import type * as pg from 'pg';
import { noMisspelt, stripUndefined } from '../config/validate.js';
import { AuthConfigError } from '../errors.js';
import { loadModule } from '../load-module.js';

/** A node-postgres Pool, a connection string, or Pool options. */
export type PostgresConnection = pg.Pool | string | pg.PoolConfig;

/**
 * node-postgres, loaded when `postgresStore()` first opens a pool of its own (a URL or Pool
 * options) rather than on import: an app on Redis or the memory store never loads it (32 modules:
 * a median of 37 ms of start-up on a busy VM), and one that passes its own `pg.Pool` never needs
 * it. Loaded by `require` (pg is CommonJS; its ES entry wraps the same classes; see loadModule),
 * which a bundler does not follow: a bundled app passes its own pool, or keeps `pg` external; the
 * error says so.
 */
const nodePostgres = (): typeof pg =>
  loadModule<typeof pg>(
    'pg',
    'postgresStore.connection',
    'opening a pool needs `pg` (node-postgres), which could not be loaded: install it (`npm install pg`), or, in a bundled app, keep `pg` external or pass your own pg.Pool',
  );

/**
 * The names node-postgres 8 reads from Pool options (its Pool's, its Client's, and the connection
 * parameters'): a name one letter off one of these is refused (see noMisspelt), any other passes.
 */
const PG_OPTION_NAMES = [
  'Client',
  'Promise',
  'allowExitOnIdle',
  'application_name',
  'binary',
  'client_encoding',
  'connectionString',
  'connectionTimeoutMillis',
  'database',
  'enableChannelBinding',
  'fallback_application_name',
  'host',
  'idleTimeoutMillis',
  'idle_in_transaction_session_timeout',
  'keepAlive',
  'keepAliveInitialDelayMillis',
  'lock_timeout',
  'log',
  'max',
  'maxLifetimeSeconds',
  'maxUses',
  'min',
  'onConnect',
  'options',
  'parseInputDatesAsUTC',
  'password',
  'port',
  'query_timeout',
  'replication',
  'ssl',
  'sslnegotiation',
  'sslNegotiation',
  'statement_timeout',
  'stream',
  'types',
  'user',
  'verify',
];

/** Other libraries' names for pg's options, as people carry them over. */
const PG_OTHER_NAMES: Readonly<Record<string, string>> = {
  url: 'connectionString',
  uri: 'connectionString',
  username: 'user',
  db: 'database',
  dbname: 'database',
  pass: 'password',
  hostname: 'host',
};

/**
 * Pool options that name no server, port, database or user, where neither a PG* environment
 * variable pg reads nor a changed `pg.defaults` does: pg would connect to localhost as the
 * process's user, which is never what an app that passed `{ connectionString:
 * process.env.DATABASE_URL }` (unset) meant.
 */
function namesNoServer(config: pg.PoolConfig, defaults: typeof pg.defaults): boolean {
  const given = (value: unknown) => value !== undefined && value !== null && value !== '';
  const named = ['connectionString', 'host', 'database', 'user', 'port'] as const;
  if (named.some((option) => given(config[option]))) return false;
  // pg reads PG + the option's name in capitals, then pg.defaults (localhost:5432, no database).
  if (['PGHOST', 'PGDATABASE', 'PGUSER', 'PGPORT'].some((name) => given(process.env[name])))
    return false;
  return (
    !given(defaults.connectionString) &&
    defaults.host === 'localhost' &&
    !given(defaults.database) &&
    defaults.port === 5432
  );
}

/**
 * A single connection (`pg.Client`, or a client checked out of a pool): it has no pool's
 * `connect()` handing out releasable clients, so the store cannot run on it. Told by shape, as
 * a pool is, so that a pool the app passes never makes the store load pg itself.
 */
function isClient(value: unknown): boolean {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { connectionParameters?: unknown }).connectionParameters === 'object'
  );
}

export function isPool(value: unknown): value is pg.Pool {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as pg.Pool).query === 'function' &&
    typeof (value as pg.Pool).connect === 'function'
  );
}

/**
 * The pool postgresStore() runs on, from its `connection`: the app's own pg.Pool (`owns` false:
 * the store never ends it), or one opened from a postgres:// URL or Pool options, bounded by the
 * store's `timeout` ms (`owns` true: `store.close()` ends it). A pg.Client, or anything else, is
 * refused with an AuthConfigError naming `postgresStore.connection`.
 */
export function resolvePool(
  connection: PostgresConnection,
  timeout: number,
): { pool: pg.Pool; owns: boolean } {
  const fail = (option: string, message: string) =>
    new AuthConfigError(`postgresStore.${option}`, message);
  let pool: pg.Pool;
  let owns = true;
  if (isClient(connection))
    throw fail(
      'connection',
      'is a pg.Client (one connection); pass a pg.Pool, a postgres:// URL or pg Pool options',
    );
  if (isPool(connection)) {
    // pg-pool's own flags: after end() it refuses every query.
    const { ending, ended } = connection as { ending?: unknown; ended?: unknown };
    if (ending === true || ended === true)
      throw fail('connection', 'is a pg.Pool that was ended (pool.end()): give an open one');
    pool = connection;
    owns = false;
  } else if (
    typeof connection === 'string' ||
    (connection !== null && typeof connection === 'object')
  ) {
    if (typeof connection === 'string' && !/^postgres(ql)?:\/\//.test(connection))
      throw fail('connection', 'must be a postgres:// URL, a pg.Pool or pg Pool options');
    if (typeof connection === 'object') {
      noMisspelt(
        'postgresStore.connection',
        connection,
        PG_OPTION_NAMES,
        'a pg Pool option',
        PG_OTHER_NAMES,
      );
      if (namesNoServer(connection, nodePostgres().defaults))
        throw fail(
          'connection',
          'names no PostgreSQL server (pg would try localhost as the user the process runs as): give connectionString (a postgres:// URL), host or database, or set PGHOST or PGDATABASE',
        );
    }
    const config: pg.PoolConfig =
      typeof connection === 'string' ? { connectionString: connection } : { ...connection };
    pool = new (nodePostgres().Pool)({
      // Bounded at every step: getting a connection, a query on the wire, and the server's own work.
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
      statement_timeout: timeout,
      // A setting given as undefined (an unset environment variable) leaves ours in place.
      ...stripUndefined(config),
    });
    // An idle connection that dies (a restart) is replaced on the next call; without a listener
    // the pool's 'error' event would crash the process.
    pool.on('error', () => {});
  } else {
    throw fail('connection', 'must be a pg.Pool, a postgres:// URL or pg Pool options');
  }
  return { pool, owns };
}
