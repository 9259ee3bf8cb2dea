import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/*
 * The README's login rate limiter, readiness probe and recent-login check are the files of
 * examples/recipes/, which test/integration/readme-recipes.test.ts imports and runs: each file
 * must appear in the README as one ts block, character for character.
 */
describe('README recipe examples', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const dir = new URL('../../examples/recipes/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));

  it('has one example file per recipe', () => {
    expect(files.sort()).toEqual(['login-rate-limit.ts', 'readiness.ts', 'recent-login.ts']);
  });

  for (const file of files) {
    it(`shows examples/recipes/${file} verbatim`, () => {
      const code = readFileSync(new URL(file, dir), 'utf8');
      expect(readme).toContain('```ts\n' + code + '```\n');
    });
  }
});
