import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { warn, warnOnce } from '../../../src/config/validate.js';

const SRC = join(import.meta.dirname, '../../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sources(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

describe('process warnings', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('warn() names the package in front of the message and passes the stable code', () => {
    const emitted = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    warn('KOA_JWT_REDIS_TEST_WARN', 'something to know');
    expect(emitted).toHaveBeenCalledExactlyOnceWith('koa-jwt-redis: something to know', {
      code: 'KOA_JWT_REDIS_TEST_WARN',
    });
  });

  it('warnOnce() warns once per code', () => {
    const emitted = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    warnOnce('KOA_JWT_REDIS_TEST_ONCE', 'first');
    warnOnce('KOA_JWT_REDIS_TEST_ONCE', 'second');
    warnOnce('KOA_JWT_REDIS_TEST_OTHER', 'other');
    expect(emitted.mock.calls.map(([message]) => message)).toEqual([
      'koa-jwt-redis: first',
      'koa-jwt-redis: other',
    ]);
  });

  it('every warning of src/ goes through warn(), and none names the package itself', () => {
    const direct: string[] = [];
    const prefixed: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8');
      const name = file.slice(SRC.length + 1);
      if (name !== join('config', 'validate.ts') && text.includes('emitWarning')) direct.push(name);
      // warn()'s message is its second argument; it must not start with the prefix warn() adds.
      for (const match of text.matchAll(/\bwarn(?:Once)?\(\s*'[A-Z_]+',\s*['`]koa-jwt-redis:/g))
        prefixed.push(`${name}: ${match[0].replace(/\s+/g, ' ')}`);
    }
    expect(direct).toEqual([]);
    expect(prefixed).toEqual([]);
  });
});
