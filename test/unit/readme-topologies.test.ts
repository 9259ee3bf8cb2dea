import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/*
 * The README's Sentinel, Cluster and TLS examples are the files of examples/redis/, which the
 * failover and TLS tests import and run: each file must appear in the README as one ts block,
 * character for character.
 */
describe('README topology examples', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const dir = new URL('../../examples/redis/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));

  it('has one example file per topology', () => {
    expect(files.sort()).toEqual(['cluster.ts', 'sentinel.ts', 'tls.ts']);
  });

  for (const file of files) {
    it(`shows examples/redis/${file} verbatim`, () => {
      const code = readFileSync(new URL(file, dir), 'utf8');
      expect(readme).toContain('```ts\n' + code + '```\n');
    });
  }
});
