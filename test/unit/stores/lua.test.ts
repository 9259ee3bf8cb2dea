import { describe, expect, it } from 'vitest';
import {
  CREATE_ARGS,
  CREATE_FIELDS,
  CREATE_SESSION,
  CREATE_SESSIONS,
  REVOKE_ALL,
  REVOKE_ALL_ARGS,
  REVOKE_SESSION,
  REVOKE_SESSION_ARGS,
  ROTATE_ARGS,
  ROTATE_FIELDS,
  ROTATE_SESSION,
  ROTATE_SESSIONS,
  SCAN_FIELDS,
} from '../../../src/stores/lua.js';
import { packArgs, scriptArgs, structFormat } from '../../../src/stores/script-args.js';
import {
  CORE_FIELDS,
  coreExpiresAt,
  META_CHUNKS,
  packCore,
  PREVIOUS_UUID_CHARS,
  SEP,
} from '../../../src/stores/record-codec.js';

const SCRIPTS = {
  CREATE_SESSION,
  CREATE_SESSIONS,
  ROTATE_SESSION,
  ROTATE_SESSIONS,
  REVOKE_SESSION,
  REVOKE_ALL,
};
const ARGS_OF: Record<keyof typeof SCRIPTS, readonly string[]> = {
  CREATE_SESSION: CREATE_ARGS,
  CREATE_SESSIONS: CREATE_ARGS,
  ROTATE_SESSION: ROTATE_ARGS,
  ROTATE_SESSIONS: ROTATE_ARGS,
  REVOKE_SESSION: REVOKE_SESSION_ARGS,
  REVOKE_ALL: REVOKE_ALL_ARGS,
};

const PACKED_OF: Partial<
  Record<keyof typeof SCRIPTS, typeof ROTATE_FIELDS | typeof CREATE_FIELDS>
> = {
  CREATE_SESSION: CREATE_FIELDS,
  CREATE_SESSIONS: CREATE_FIELDS,
  ROTATE_SESSION: ROTATE_FIELDS,
  ROTATE_SESSIONS: ROTATE_FIELDS,
};

describe('the Lua scripts, generated from the record codec', () => {
  it.each(Object.entries(SCRIPTS))(
    '%s reads its named arguments in one line, in order, and core fields only by name',
    (name, lua) => {
      const args = ARGS_OF[name as keyof typeof SCRIPTS];
      const reads = lua.split('\n').filter((line) => /ARGV\[BASE \+ \d+\]/.test(line));
      expect(reads).toEqual([
        `local ${args.join(', ')} = ${args.map((_, i) => `ARGV[BASE + ${i + 1}]`).join(', ')}`,
      ]);
      // A packed argument's fields, in one struct.unpack of it, in the order packArgs writes.
      const packed = PACKED_OF[name as keyof typeof SCRIPTS];
      const unpacks = lua.split('\n').filter((line) => line.includes("struct.unpack('>"));
      expect(unpacks).toEqual(
        packed === undefined
          ? []
          : [
              `local ${packed.map(([field]) => field).join(', ')} = struct.unpack('${structFormat(packed)}', ${args[0]})`,
            ],
      );
      expect(lua).not.toMatch(/ARGV\[\d/);
      // No core field is picked out by a position or a hand-written pattern of separators: the
      // two patterns, for the expiry and the creation time, are generated from the codec
      // (checked below). A binary record's parts are cut at offsets, not matched.
      expect(
        lua.replaceAll(/string\.match\(\w+(\[i \+ 1\])?, (EXPIRES|CREATED)_AT_PATTERN\)/g, ''),
      ).not.toMatch(/string\.match\(/);
      expect(lua).not.toMatch(/\bf\[\d/);
    },
  );

  it('reads the expiry and the creation time of a core record with patterns generated from the codec', () => {
    // A Lua pattern, read as a regular expression (they use no Lua-only syntax).
    const read = (name: string, core: string) => {
      const pattern = new RegExp(`local ${name}_PATTERN = '(.*)'`).exec(CREATE_SESSION)?.[1];
      return parseInt(new RegExp(pattern!.replaceAll(SEP, `\\${SEP}`)).exec(core)![1]!, 36);
    };
    const core = packCore({
      jti: '0f8fad5b-d9cb-469f-a165-70867728950e',
      previousJti: 'abcdefghijklmn',
      rotatedAt: 1_700_000_000_123,
      createdAt: 1_700_000_000_000,
      expiresAt: 1_800_000_000_999,
    });
    expect(read('EXPIRES_AT', core)).toBe(1_800_000_000_999);
    expect(read('CREATED_AT', core)).toBe(1_700_000_000_000);
    expect(coreExpiresAt(Buffer.from(core))).toBe(1_800_000_000_999);
  });

  it('takes field order, separator and the kept jti length from the codec', () => {
    const fieldTable = CORE_FIELDS.map((field, i) => `${field} = ${i + 1}`).join(', ');
    expect(ROTATE_SESSION).toContain(`local F = { ${fieldTable} }`);
    expect(ROTATE_SESSION).toContain(`local SEP = '${SEP}'`);
    expect(ROTATE_SESSION).toContain(`local PREVIOUS_UUID_CHARS = ${PREVIOUS_UUID_CHARS}`);
  });

  it("lets a new key's login skip the scan: one login's fields stay below SCAN_FIELDS", () => {
    // The first login of a user's own hash writes and returns before any scan or cap work, which
    // holds only while a login (its core field and every metadata chunk) cannot make it large.
    expect(1 + META_CHUNKS).toBeLessThan(SCAN_FIELDS);
  });

  it('puts arguments in the order the script names them', () => {
    expect(scriptArgs(REVOKE_SESSION_ARGS, { owner: 'o', sessionId: 's', now: 1 })).toEqual([
      'o',
      's',
      1,
    ]);
    expect(CREATE_ARGS).toEqual(['packed']);
    expect(ROTATE_ARGS).toEqual(['packed']);
  });

  it('packs fields as struct.unpack reads them: lengths before text and bytes, doubles, flags', () => {
    const fields = [
      ['t', 'text'],
      ['b', 'bytes'],
      ['n', 'number'],
      ['f', 'flag'],
      ['e', 'bytes'],
    ] as const;
    expect(structFormat(fields)).toBe('>I2c0Bc0dBBc0');
    const packed = packArgs(fields, {
      t: 'ü-1',
      b: Buffer.from([0, 255]),
      n: 1_800_000_000_123.5,
      f: true,
      e: '',
    });
    const expected = Buffer.alloc(2 + 4 + 1 + 2 + 8 + 1 + 1);
    let at = expected.writeUInt16BE(4, 0);
    at += expected.write('ü-1', at, 'utf8');
    expected[at++] = 2;
    expected[at++] = 0;
    expected[at++] = 255;
    at = expected.writeDoubleBE(1_800_000_000_123.5, at);
    expected[at++] = 1;
    expected[at++] = 0;
    expect(packed).toEqual(expected);
    // Longer than its length field holds: an error, never a wrong length.
    expect(() => packArgs([['e', 'bytes']] as const, { e: 'x'.repeat(256) })).toThrow(RangeError);
    expect(() => packArgs([['t', 'text']] as const, { t: 'x'.repeat(65_536) })).toThrow(RangeError);
  });
});
