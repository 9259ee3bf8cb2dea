import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMPATIBLE_VERSIONS } from '../../src/version.js';

describe('COMPATIBLE_VERSIONS', () => {
  it("is package.json's version as semver counts compatibility (the minor at 0.x, else the major)", () => {
    const { version } = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    const [major, minor] = version.split('.');
    expect(COMPATIBLE_VERSIONS).toBe(major === '0' ? `0.${minor}` : major);
  });
});
