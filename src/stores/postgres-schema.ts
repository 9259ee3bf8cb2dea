import { AuthConfigError } from '../errors.js';
import type { SessionRecord } from './session-store.js';

/*
 * What the PostgreSQL store keeps in the database, declared once: the sessions table's DDL
 * (postgresMigrationSql, which migrate() runs), the names it may be given, the columns the store
 * reads back and how a row becomes a SessionRecord, and the advisory-lock namespace every process
 * sharing the table must agree on. postgres-store.ts runs the queries.
 */

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** The expiry index's name is the table's with this after it. */
const INDEX_SUFFIX = '_expires_at_idx';
/** Namespace of the per-user advisory locks (first key of pg_advisory_xact_lock(int, int)). */
export const LOCK_NAMESPACE = 0x6b6a72;

export const quote = (name: string): string => `"${name}"`;

export interface Row {
  session_id: string;
  jti: string;
  previous_jti: string;
  rotated_at: string;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  ip: string;
  user_agent: string;
}

export function toRecord(row: Row): SessionRecord {
  return {
    sessionId: row.session_id,
    jti: row.jti,
    previousJti: row.previous_jti,
    rotatedAt: Number(row.rotated_at),
    createdAt: Number(row.created_at),
    lastUsedAt: Number(row.last_used_at),
    expiresAt: Number(row.expires_at),
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

export const COLUMNS =
  'session_id, jti, previous_jti, rotated_at, created_at, last_used_at, expires_at, ip, user_agent';

/**
 * Refuses a schema or table name that is not a plain SQL identifier: names are written into the
 * SQL (quoted), so one with a quote or anything else would change the statements. `at` is what
 * the error names before `schema` or `table`: `postgresStore.` (an option) or
 * `postgresMigrationSql ` (an argument).
 */
export function checkIdentifiers(at: string, names: { schema: unknown; table: unknown }): void {
  for (const [name, value] of Object.entries(names)) {
    if (typeof value !== 'string' || !IDENTIFIER.test(value))
      throw new AuthConfigError(
        `${at}${name}`,
        'must be a plain SQL identifier: a letter or _, then letters, digits or _ (at most 63)',
      );
  }
  // PostgreSQL cuts a longer name to 63 bytes without an error: two long table names alike in
  // their first 48 characters would share one index name, and IF NOT EXISTS would skip the
  // second table's index.
  if ((names.table as string).length + INDEX_SUFFIX.length > 63)
    throw new AuthConfigError(
      `${at}table`,
      `must be at most ${63 - INDEX_SUFFIX.length} characters, so that its index's name (the table's with "${INDEX_SUFFIX}") fits PostgreSQL's 63`,
    );
}

/** The schema: one table, keyed by (user, session); times are epoch milliseconds. */
export function postgresMigrationSql(schema = 'public', table = 'auth_sessions'): string {
  checkIdentifiers('postgresMigrationSql ', { schema, table });
  const t = `${quote(schema)}.${quote(table)}`;
  return `CREATE SCHEMA IF NOT EXISTS ${quote(schema)};
CREATE TABLE IF NOT EXISTS ${t} (
  user_id      text   NOT NULL,
  session_id   text   NOT NULL,
  jti          text   NOT NULL,
  previous_jti text   NOT NULL DEFAULT '',
  rotated_at   bigint NOT NULL DEFAULT 0,
  created_at   bigint NOT NULL,
  last_used_at bigint NOT NULL,
  expires_at   bigint NOT NULL,
  ip           text   NOT NULL DEFAULT '',
  user_agent   text   NOT NULL DEFAULT '',
  PRIMARY KEY (user_id, session_id)
);
CREATE INDEX IF NOT EXISTS ${quote(`${table}${INDEX_SUFFIX}`)} ON ${t} (expires_at);
`;
}
