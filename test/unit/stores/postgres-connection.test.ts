import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { AuthConfigError } from '../../../src/index.js';
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

describe('Pool options node-postgres would ignore', () => {
  it('a name one letter off (or in another case) from one pg reads is refused, naming it and the one meant', () => {
    for (const [options, key, meant] of [
      [{ conectionString: 'postgres://127.0.0.1/app' }, 'conectionString', 'connectionString'],
      [{ host: '127.0.0.1', sll: true }, 'sll', 'ssl'],
      [{ host: '127.0.0.1', pasword: 'x' }, 'pasword', 'password'],
      [{ host: '127.0.0.1', queryTimeout: 100 }, 'queryTimeout', 'query_timeout'],
      [{ host: '127.0.0.1', statementTimeout: 100 }, 'statementTimeout', 'statement_timeout'],
    ] as const) {
      let error: unknown;
      try {
        resolvePool(options as unknown as pg.PoolConfig, 700);
      } catch (caught) {
        error = caught;
      }
      expect(error, key).toBeInstanceOf(AuthConfigError);
      expect((error as AuthConfigError).option).toBe(`postgresStore.connection.${key}`);
      expect((error as Error).message).toContain(`did you mean ${meant}?`);
    }
  });

  it("another library's name for a pg option is refused, naming pg's (url for connectionString)", () => {
    for (const [key, meant] of [
      ['url', 'connectionString'],
      ['username', 'user'],
      ['db', 'database'],
    ] as const) {
      let error: unknown;
      try {
        resolvePool({ host: '127.0.0.1', [key]: 'x' } as unknown as pg.PoolConfig, 700);
      } catch (caught) {
        error = caught;
      }
      expect((error as AuthConfigError).option).toBe(`postgresStore.connection.${key}`);
      expect((error as Error).message).toContain(`did you mean ${meant}?`);
    }
  });

  it('options that name no server, database or user (an unset DATABASE_URL) are refused, unless PG* variables do', async () => {
    const saved = { ...process.env };
    for (const name of Object.keys(process.env))
      if (name.startsWith('PG')) delete process.env[name];
    try {
      for (const options of [
        {},
        { connectionString: undefined },
        { connectionString: '' },
        { max: 5 },
      ])
        expect(() => resolvePool(options as pg.PoolConfig, 700), JSON.stringify(options)).toThrow(
          /postgresStore\.connection.*names no PostgreSQL server/,
        );
      // Variables pg does not read name nothing.
      process.env.PGSERVICE = 'app';
      expect(() => resolvePool({ max: 5 }, 700)).toThrow(/names no PostgreSQL server/);
      process.env.PGHOST = '127.0.0.1';
      process.env.PGPORT = '1';
      const { pool } = resolvePool({}, 700);
      await pool.end();
      delete process.env.PGHOST;
      delete process.env.PGPORT;
      // Nor is an app refused that set pg.defaults, which pg falls back to.
      const { defaults } = (await import('pg')).default;
      defaults.database = 'app';
      try {
        const fromDefaults = resolvePool({ max: 5 }, 700);
        await fromDefaults.pool.end();
      } finally {
        defaults.database = undefined;
      }
    } finally {
      process.env = saved;
    }
  });

  it('a name far from all of them passes to pg (a newer option of its own)', async () => {
    const { pool } = resolvePool(
      { connectionString: 'postgres://127.0.0.1:1/none', someFutureSetting: 1 } as pg.PoolConfig,
      700,
    );
    await pool.end();
  });
});
