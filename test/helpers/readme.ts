import { readFileSync } from 'node:fs';

/**
 * The README's TypeScript blocks, as test/integration/readme.test.ts compiles them.
 *
 * Every ```ts block (at any indentation) is a module of its own. An HTML comment on the line
 * just before the fence can say more:
 * - `<!-- readme-test: skip <reason> -->`: not compiled (a fragment that is not a statement,
 *   e.g. the `keys: [...]` of a createAuth call). The reason is required.
 * - `<!-- readme-test: run -->`: also run, against a real Redis over HTTP (one block only).
 * A block may use, without declaring them, the names of {@link CONTEXT}: what the README's
 * snippets share (`app`, `router`, `auth`, `redis`) and what an app supplies (`findUser`, …).
 */
export interface ReadmeBlock {
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
  directive?: { kind: 'skip'; reason: string } | { kind: 'run' };
}

const DIRECTIVE = /^\s*<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->\s*$/;

export function readmeBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent = '', lang] = open;
    let end = i + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++;
    if (lang === 'ts' || lang === 'typescript') {
      const code = lines
        .slice(i + 1, end)
        .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l.trimStart()))
        .join('\n');
      let before = i - 1;
      while (before >= 0 && lines[before]!.trim() === '') before--;
      const match = before >= 0 ? DIRECTIVE.exec(lines[before]!) : null;
      const block: ReadmeBlock = { line: i + 1, code };
      if (match) {
        const [, kind, rest = ''] = match;
        if (kind === 'run') block.directive = { kind: 'run' };
        else if (kind === 'skip' && rest !== '') block.directive = { kind: 'skip', reason: rest };
        else
          throw new Error(
            `README.md:${before + 1}: unknown readme-test comment (use "skip <reason>" or "run")`,
          );
      }
      blocks.push(block);
    }
    i = end;
  }
  return blocks;
}

/** The install commands a user types, from the README: the package line, then TypeScript's. */
export function installLines(markdown: string): { packages: string[]; typescript: string[] } {
  const section = markdown.slice(markdown.indexOf('## Use it in your app'));
  const packages = /```sh\n(npm install [^\n]+)\n/.exec(section)?.[1];
  const typescript = /`(npm install -D [^`]+)`/.exec(section)?.[1];
  if (!packages || !typescript)
    throw new Error(
      'README "Use it in your app": no `npm install …` line, or no `npm install -D …`',
    );
  const words = (line: string) => line.split(/\s+/).slice(2);
  return { packages: words(packages), typescript: words(typescript) };
}

/** Bare module names a block imports (`pino`, `@koa/router`), not `node:` built-ins or paths. */
export function importedPackages(code: string): string[] {
  const names = new Set<string>();
  for (const [, spec] of code.matchAll(/^\s*import\s[^'"]*?['"]([^'"]+)['"]/gm)) {
    if (!spec || spec.startsWith('.') || spec.startsWith('node:')) continue;
    const parts = spec.split('/');
    names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  }
  return [...names];
}

/**
 * What README fragments may use without declaring: ambient globals in the consumer project. The
 * first four are the objects the README's own snippets create; the rest stand for the app's code.
 */
export const CONTEXT = `import type Router from '@koa/router';
import type { Redis } from 'ioredis';
import type Koa from 'koa';
import type { Auth, TokenUser } from 'koa-jwt-redis';

declare global {
  /** new Koa(), as in "Use it in your app". */
  const app: Koa;
  /** new Router(), as in "Use it in your app". */
  const router: Router;
  /** What createAuth returned. */
  const auth: Auth;
  /** An ioredis client, as in "Use it in your app". */
  const redis: Redis;
  /** The app's credential check: the user, or null for wrong credentials. */
  function findUser(credentials: unknown): Promise<(TokenUser & { role: string }) | null>;
  function checkPassword(credentials: unknown): Promise<TokenUser | null>;
  /** The app's logger. */
  const logger: { warn(message: string): void };
}
export {};
`;

export const readme = (root: string): string => readFileSync(`${root}/README.md`, 'utf8');
