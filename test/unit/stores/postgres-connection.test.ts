import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { resolvePool } from '../../../src/stores/postgres-connection.js';

describe('a pool the PostgreSQL store opens from Pool options', () => {
  it('is bounded by the store timeout, and a setting given as undefined leaves that bound in place', async () => {
    const { pool, owns } = resolvePool(
      {
        connectionString: 'postgres://127.0.0.1:1/none',
        statement_timeout: undefined,
        query_timeout: undefined,
        connectionTimeoutMillis: 250,
      },
      700,
    );
    const options = (pool as pg.Pool & { options: pg.PoolConfig }).options;
    expect(owns).toBe(true);
    expect(options).toMatchObject({
      statement_timeout: 700,
      query_timeout: 700,
      // Given: the app's own setting wins.
      connectionTimeoutMillis: 250,
    });
    await pool.end();
  });
});
