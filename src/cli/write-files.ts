import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Algorithm } from '../keys/algorithms.js';
import type { toPublicJwk } from '../keys/jwk.js';
import { jsString } from './js-string.js';

/** A refusal that is not a usage mistake (exit code 1): e.g. a key file that already exists. */
export class RefusedError extends Error {}

/** What keygen made: a secret, or a key pair with its public JWK. */
export type Generated =
  | { alg: Algorithm; kid: string; secret: string }
  | {
      alg: Algorithm;
      kid: string;
      privateKey: string;
      publicKey: string;
      jwk: ReturnType<typeof toPublicJwk>;
    };

/**
 * Writes the key into `dir`, secrets and private keys readable by the owner only. All or nothing:
 * anything already at one of the names (a dangling symlink too) is refused without --force, and if
 * a write still fails (a file appeared meanwhile, the disk is full) the files this run made are
 * removed again. Every file is created new (exclusive), so no symlink is ever followed; --force
 * writes beside the targets and renames over them only once all are written.
 */
export function written(key: Generated, dir: string, force: boolean, json: boolean): string {
  const files: { name: string; content: string; mode: number; what: string }[] =
    'secret' in key
      ? [
          {
            name: 'secret',
            content: `${key.secret}\n`,
            mode: 0o600,
            what: 'secret (keep it secret)',
          },
        ]
      : [
          {
            name: 'private.pem',
            content: key.privateKey,
            mode: 0o600,
            what: 'private key, PKCS#8 PEM (keep it secret)',
          },
          { name: 'public.pem', content: key.publicKey, mode: 0o644, what: 'public key, SPKI PEM' },
          {
            name: 'jwk.json',
            content: `${JSON.stringify(key.jwk)}\n`,
            mode: 0o644,
            what: 'public JWK (what auth.jwks() publishes)',
          },
        ];
  const paths = files.map((f) => join(dir, f.name));
  // lstat, not exists: a dangling symlink is something there too.
  const found = paths.flatMap((path) => {
    const stat = lstatSync(path, { throwIfNoEntry: false });
    return stat ? [{ path, stat }] : [];
  });
  const existing = found.map(({ path }) => path);
  if (existing.length > 0 && !force)
    throw new RefusedError(
      `${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; nothing was written. Pass --force to overwrite, or choose another --out.`,
    );
  // A rename cannot replace a directory: say so before writing anything.
  const unreplaceable = found
    .filter(({ stat }) => !stat.isFile() && !stat.isSymbolicLink())
    .map(({ path }) => path);
  if (unreplaceable.length > 0)
    throw new RefusedError(
      `${unreplaceable.join(', ')} ${unreplaceable.length === 1 ? 'is' : 'are'} not a file; nothing was written.`,
    );
  const madeDir = mkdirSync(dir, { recursive: true, mode: 0o700 });
  const targets = force
    ? paths.map((path) =>
        join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`),
      )
    : paths;
  const created: string[] = [];
  let replaced = 0;
  try {
    files.forEach((file, i) => {
      const fd = openSync(targets[i]!, 'wx', file.mode);
      created.push(targets[i]!);
      try {
        // The umask may have narrowed the mode: the modes are part of the promise.
        fchmodSync(fd, file.mode);
        writeFileSync(fd, file.content);
      } finally {
        closeSync(fd);
      }
    });
    if (force)
      for (const [i, target] of targets.entries()) {
        renameSync(target, paths[i]!);
        replaced++;
      }
  } catch (error) {
    for (const path of created) rmSync(path, { force: true });
    if (madeDir !== undefined) removeEmptyDirectories(dir, madeDir);
    if ((error as NodeJS.ErrnoException).code === undefined) throw error;
    const done = paths.slice(0, replaced);
    throw new RefusedError(
      `${(error as Error).message}; ${
        replaced === 0
          ? 'nothing was written'
          : `${done.join(', ')} ${replaced === 1 ? 'was' : 'were'} replaced all the same`
      }.`,
      { cause: error },
    );
  }
  if (json)
    return `${JSON.stringify({ alg: key.alg, kid: key.kid, files: Object.fromEntries(files.map((f, i) => [f.name, paths[i]])) })}\n`;
  const material =
    'secret' in key
      ? `secret: readFileSync(${jsString(paths[0]!)}, 'utf8').trim()`
      : `privateKey: readFileSync(${jsString(paths[0]!)})`;
  return [
    `Wrote the ${key.alg} ${'secret' in key ? 'secret' : 'key pair'} (kid ${key.kid}) to ${dir}:`,
    ...files.map(
      (f, i) => `  ${paths[i]!.padEnd(Math.max(...paths.map((p) => p.length)))}  ${f.what}`,
    ),
    `Use it: keys: [{ algorithm: '${key.alg}', kid: ${jsString(key.kid)}, ${material} }]`,
    '',
  ].join('\n');
}

/** Undoes `mkdir -p`: removes `dir` and its parents up to `top`, the first one it made, if empty. */
function removeEmptyDirectories(dir: string, top: string): void {
  const last = resolve(top);
  for (let path = resolve(dir); path.length >= last.length; path = dirname(path)) {
    try {
      rmdirSync(path);
    } catch {
      return; // not empty (someone else's file): keep it, and so its parents
    }
    if (path === last) return;
  }
}
