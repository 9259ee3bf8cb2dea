import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { postgresMigrationSql } from '../../../src/index.js';

/*
 * README "PostgreSQL" shows users the schema to apply with their own migration tool. It must be
 * the SQL `store.migrate()` runs, for the names the README's own example uses (schema 'public',
 * table 'auth_sessions': `postgresMigrationSql()`'s defaults), statement for statement. The README
 * block carries explanatory `--` comments and aligned columns; the code does not. Both sides are
 * normalised alike: comments dropped, whitespace collapsed. Nothing else is forgiven (not case,
 * not quoting, not a missing statement), so the block is the whole migration, not a subset.
 */

/** The SQL with its comments removed and its whitespace collapsed; quoted text is kept as is. */
function normaliseSql(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      // A quoted string or identifier, through its closing quote (a doubled quote escapes one).
      let end = i + 1;
      for (; end < sql.length; end++) {
        if (sql[end] !== c) continue;
        if (sql[end + 1] === c) end++;
        else break;
      }
      out += sql.slice(i, end + 1);
      i = end + 1;
    } else if (sql.startsWith('--', i)) {
      const newline = sql.indexOf('\n', i);
      i = newline === -1 ? sql.length : newline;
      out += ' ';
    } else if (sql.startsWith('/*', i)) {
      const close = sql.indexOf('*/', i + 2);
      i = close === -1 ? sql.length : close + 2;
      out += ' ';
    } else {
      out += /\s/.test(c) ? ' ' : c;
      i++;
    }
  }
  return out
    .replace(/ {2,}/g, ' ')
    .replace(/ ?([(),;]) ?/g, '$1')
    .trim();
}

/** The ```sql blocks of the README section under `heading`, up to the next heading of its level or above. */
function sqlBlocksOf(markdown: string, heading: string): { line: number; code: string }[] {
  const lines = markdown.split('\n');
  const start = lines.indexOf(heading);
  if (start === -1) throw new Error(`README.md has no "${heading}" heading`);
  const level = /^#+/.exec(heading)![0].length;
  let end = start + 1;
  while (end < lines.length && !new RegExp(`^#{1,${level}} `).test(lines[end]!)) end++;
  const blocks: { line: number; code: string }[] = [];
  for (let i = start + 1; i < end; i++) {
    if (!/^```sql\s*$/.test(lines[i]!)) continue;
    let close = i + 1;
    while (close < end && !/^```\s*$/.test(lines[close]!)) close++;
    blocks.push({ line: i + 1, code: lines.slice(i + 1, close).join('\n') });
    i = close;
  }
  return blocks;
}

describe('README "PostgreSQL": the schema shown is the one migrate() creates', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

  it('the section has one SQL block, and it is postgresMigrationSql() modulo comments and whitespace', () => {
    const blocks = sqlBlocksOf(readme, '### PostgreSQL');
    expect(blocks, `README.md lines ${blocks.map((b) => b.line).join(', ')}`).toHaveLength(1);
    const shown = normaliseSql(blocks[0]!.code);
    // The README's example is postgresStore(pool, { schema: 'public', table: 'auth_sessions' }).
    expect(readme).toContain("postgresStore(pool, { schema: 'public', table: 'auth_sessions' })");
    expect(shown).toBe(normaliseSql(postgresMigrationSql('public', 'auth_sessions')));
    expect(postgresMigrationSql()).toBe(postgresMigrationSql('public', 'auth_sessions'));
  });

  it('normalises only comments and whitespace: quoted text, case and every token count', () => {
    expect(normaliseSql("a  text NOT NULL DEFAULT '',   -- a comment\n  b (x , y)\n;")).toBe(
      "a text NOT NULL DEFAULT '',b(x,y);",
    );
    expect(normaliseSql(`x DEFAULT '-- kept' /* gone */ "a--b"`)).toBe(
      `x DEFAULT '-- kept' "a--b"`,
    );
    expect(normaliseSql("'it''s -- kept'")).toBe("'it''s -- kept'");
    const code = normaliseSql(postgresMigrationSql());
    // A change of a column's type, a default or an index name would not be forgiven.
    for (const changed of [
      postgresMigrationSql().replace('expires_at   bigint', 'expires_at   integer'),
      postgresMigrationSql().replace("DEFAULT ''", 'DEFAULT NULL'),
      postgresMigrationSql().replace('_expires_at_idx', '_exp_idx'),
      postgresMigrationSql().toLowerCase(),
    ]) {
      expect(normaliseSql(changed)).not.toBe(code);
    }
  });
});
