import { randomUUID } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL the tests use: PG_URL, else the machine's server on 127.0.0.1:5432 (trust auth,
 * user postgres, database `test`). Tests only ever work in a schema of their own and drop it.
 */
export const pgUrl = (): string => process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh schema name for one test file. */
export const uniqueSchema = (): string => `kjr_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

/** A pool on the test database, closed by the caller. */
export function testPool(url = pgUrl()): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  pool.on('error', () => {});
  return pool;
}

/** Drops a schema this test run created, with everything in it. */
export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}
