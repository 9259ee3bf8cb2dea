import { describe, expect, it } from 'vitest';
import { misspelt } from '../../../src/config/validate.js';

const KNOWN = ['ssl', 'host', 'password', 'query_timeout', 'connectionString', 'keepAlive'];

describe('misspelt (option names handed on to pg or ioredis)', () => {
  it('names the known option a close name stands for', () => {
    expect(misspelt('sll', KNOWN)).toBe('ssl'); // two letters swapped: one edit
    expect(misspelt('hots', KNOWN)).toBe('host');
    expect(misspelt('pasword', KNOWN)).toBe('password');
    expect(misspelt('PASSWORD', KNOWN)).toBe('password');
    expect(misspelt('queryTimeout', KNOWN)).toBe('query_timeout');
    expect(misspelt('conectionStrng', KNOWN)).toBe('connectionString'); // two edits, a long name
    expect(misspelt('keep_alive', KNOWN)).toBe('keepAlive');
  });

  it('passes known names, and names too far from any (another library version’s options)', () => {
    for (const name of KNOWN) expect(misspelt(name, KNOWN)).toBeUndefined();
    for (const name of ['hostess', 'passphrase', 'timeout', 'application_name', 'x', ''])
      expect(misspelt(name, KNOWN), name).toBeUndefined();
    // Short names allow one edit only: two would make 'db' a typo of many things.
    expect(misspelt('hxxt', KNOWN)).toBeUndefined();
  });
});
