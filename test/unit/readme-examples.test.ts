import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/*
 * README examples kept as files, which tests import and run: the Sentinel, Cluster and TLS
 * setups of examples/redis/ (the failover and TLS tests), and the login rate limiter, readiness
 * probe and recent-login check of examples/recipes/ (test/integration/readme-recipes.test.ts).
 * Each file must appear in the README as one ts block, character for character.
 */
const EXAMPLES: Record<string, string[]> = {
  redis: ['cluster.ts', 'sentinel-lease.ts', 'sentinel.ts', 'tls.ts'],
  recipes: ['login-rate-limit.ts', 'readiness.ts', 'recent-login.ts'],
};

describe('README examples kept as files', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const [folder, expected] of Object.entries(EXAMPLES)) {
    const dir = new URL(`../../examples/${folder}/`, import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));

    it(`examples/${folder} holds ${expected.join(', ')}`, () => {
      expect(files.sort()).toEqual(expected);
    });

    for (const file of files) {
      it(`shows examples/${folder}/${file} verbatim`, () => {
        const code = readFileSync(new URL(file, dir), 'utf8');
        expect(readme).toContain('```ts\n' + code + '```\n');
      });
    }
  }
});
