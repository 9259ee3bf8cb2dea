/*
 * How the Redis store's arguments travel to its Lua scripts (lua.ts): a script's ARGV in the
 * order its named list gives (scriptArgs), or a login's and a rotation's fields packed in one
 * Buffer (packArgs) that the script reads back with one `struct.unpack` of structFormat's format.
 */

/** A script's ARGV: `values` in the order of `names`. */
export function scriptArgs<N extends readonly string[]>(
  names: N,
  values: Record<N[number], string | number>,
): (string | number)[] {
  return names.map((name: N[number]) => values[name]);
}

/**
 * How packArgs writes a field, and `struct.unpack` reads it: `text`, up to 65,535 bytes (a
 * Buffer, or a string as UTF-8) after its length (I2c0); `bytes`, up to 255 after its length
 * (Bc0); `number`, a double, any JavaScript number exactly (d); `flag`,
 * 0 or 1 (B). Big-endian throughout.
 */
export type PackedFormat = 'text' | 'bytes' | 'number' | 'flag';
const STRUCT_FORMAT: Record<PackedFormat, string> = {
  text: 'I2c0',
  bytes: 'Bc0',
  number: 'd',
  flag: 'B',
};
export type PackedFields = readonly (readonly [string, PackedFormat])[];
type PackedValue<F extends PackedFormat> = F extends 'text' | 'bytes'
  ? string | Buffer
  : F extends 'number'
    ? number
    : boolean;
export type PackedValues<P extends PackedFields> = {
  [K in P[number] as K[0]]: PackedValue<K[1]>;
};

/** The `struct` format that reads what packArgs writes for `fields`. */
export const structFormat = (fields: PackedFields): string =>
  `>${fields.map(([, format]) => STRUCT_FORMAT[format]).join('')}`;

/**
 * Writes `text` at `at` as UTF-8, after its length in `lengthBytes` (1 or 2) bytes; returns
 * where the next field starts. A short ASCII string (every one the store sends but a user's own
 * id) is copied by character, cheaper than a call into Buffer.write.
 */
function putText(out: Buffer, at: number, text: string, lengthBytes: 1 | 2): number {
  const start = at + lengthBytes;
  let end = start;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) {
      end = start + out.write(text, start, 'utf8');
      break;
    }
    out[end++] = code;
  }
  putLength(out, at, end - start, lengthBytes);
  return end;
}

/** Writes `bytes` at `at`, after its length in `lengthBytes` bytes; returns where the next field starts. */
function putBytes(out: Buffer, at: number, bytes: Buffer, lengthBytes: 1 | 2): number {
  putLength(out, at, bytes.length, lengthBytes);
  return at + lengthBytes + bytes.copy(out, at + lengthBytes);
}

function putLength(out: Buffer, at: number, length: number, lengthBytes: 1 | 2): void {
  if (length >= 1 << (8 * lengthBytes))
    throw new RangeError(`a packed script argument of ${length} bytes`);
  if (lengthBytes === 1) out[at] = length;
  else out.writeUInt16BE(length, at);
}

/**
 * One script argument holding `values` as `fields` describe them (structFormat reads it back).
 * Sent as a Buffer: ioredis writes a command with a Buffer in it by its slower path, which costs
 * less than the arguments it replaces.
 */
export function packArgs<P extends PackedFields>(fields: P, values: PackedValues<P>): Buffer {
  const all = values as Record<string, string | number | boolean | Buffer>;
  let size = 0;
  for (const [name, format] of fields) {
    const value = all[name]!;
    size +=
      format === 'number' ? 8 : format === 'flag' ? 1 : 2 + 3 * (value as string | Buffer).length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const [name, format] of fields) {
    const value = all[name]!;
    if (format === 'number') at = out.writeDoubleBE(value as number, at);
    else if (format === 'flag') out[at++] = value === true ? 1 : 0;
    else {
      const lengthBytes = format === 'text' ? 2 : 1;
      if (typeof value === 'string') at = putText(out, at, value, lengthBytes);
      else at = putBytes(out, at, value as Buffer, lengthBytes);
    }
  }
  return out.subarray(0, at);
}
