import { describe, expect, it } from 'vitest';
import { AuthConfigError, postgresMigrationSql } from '../../../src/index.js';

/** The error postgresMigrationSql throws for these names, or undefined when it returns SQL. */
const refusal = (schema?: string, table?: string): AuthConfigError | undefined => {
  try {
    postgresMigrationSql(schema, table);
  } catch (error) {
    if (error instanceof AuthConfigError) return error;
    throw error;
  }
  return undefined;
};

describe('postgresMigrationSql(schema, table)', () => {
  it('refuses a name that is not a plain identifier, as postgresStore does: no SQL to inject into', () => {
    const bad = ['x"; DROP TABLE users; --', 'a"b', 'x; DROP TABLE users', '', '1abc', 'public.x'];
    for (const name of [...bad, 'a'.repeat(64)]) {
      expect(refusal('public', name)).toMatchObject({
        code: 'invalid_option',
        option: 'postgresMigrationSql table',
      });
      expect(refusal(name, 'auth_sessions')).toMatchObject({
        code: 'invalid_option',
        option: 'postgresMigrationSql schema',
      });
    }
    for (const value of [null, 42, {}])
      expect(refusal('public', value as unknown as string)?.code).toBe('invalid_option');
  });

  it('gives the SQL for plain identifiers, the defaults included', () => {
    expect(refusal()).toBeUndefined();
    expect(postgresMigrationSql()).toContain('CREATE TABLE IF NOT EXISTS "public"."auth_sessions"');
    const sql = postgresMigrationSql('_' + 'a'.repeat(62), 'Sessions_' + 'x'.repeat(39));
    expect(sql).toContain(`"_${'a'.repeat(62)}"."Sessions_${'x'.repeat(39)}"`);
    expect(sql).toContain(`"Sessions_${'x'.repeat(39)}_expires_at_idx"`);
  });

  it('refuses a table name whose index name PostgreSQL would cut to 63 bytes (48 is the most)', () => {
    expect(refusal('public', 't'.repeat(48))).toBeUndefined();
    expect(refusal('public', 't'.repeat(49))).toMatchObject({
      code: 'invalid_option',
      option: 'postgresMigrationSql table',
      message: expect.stringContaining('at most 48'),
    });
  });
});
