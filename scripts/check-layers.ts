/*
 * The layer rule of src/, checked in `npm test`: every import points down the list below, and no
 * import goes in a circle. Type-only imports count too: a type that points up is still an arrow
 * pointing up. docs/ARCHITECTURE.md explains the layers; this list is the one place they are set.
 *
 * Usage: tsx scripts/check-layers.ts [srcDir]   (exit code 1 and one line per problem on failure)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * Layers from the top (may import anything below) to the bottom (imports nothing of ours). An
 * entry is a file (`auth.ts`) or a folder (`keys/`), relative to src/; a file named on its own
 * (`config/validate.ts`) is in its own layer, not its folder's. Entries of one layer may import
 * each other, as long as no cycle forms.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['index.ts', 'cli.ts'], // the public barrel and the keygen command
  ['cli/'], // the keygen command's parts: writing the key files all or nothing, JS string quoting
  ['default-helpers.ts'], // free functions bound to the default instance
  ['auth.ts', 'verifier.ts'], // wiring: createAuth, createVerifier
  ['router.ts', 'openapi.ts'], // the ready-made routes (given a host, never auth.ts) and their OpenAPI description
  ['router/'], // the routes' parts: JSON request bodies (parsed and checked), their URL paths
  ['openapi/'], // the OpenAPI document's parts: its types, the paths, the components they refer to
  ['middleware/'], // credentials, getToken, getData, requireAuth, CSRF, error rendering
  ['strategies/'], // TokenReader / TokenStrategy, the registry, jwt and redis strategies
  ['config/'], // option types, defaults, the validator kit; checked once at start-up
  ['tokens/'], // claims, signing and verifying, the verify cache
  ['stores/', 'keys/'], // session stores and their record codec; key ring, algorithm table, JWKs
  // error classes and codes; the one event emitter; debug logging; the validator kit every
  // factory checks its options with (store factories included, so it sits below stores/)
  ['errors.ts', 'events.ts', 'debug.ts', 'config/validate.ts', 'version.ts', 'load-module.ts'],
];

export interface Problem {
  kind: 'upward' | 'cycle' | 'unlayered' | 'unresolved';
  message: string;
}

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) files.push(path);
  }
  return files.sort();
}

/** The layer index of a file (0 = top), or undefined when no entry names it. The most specific entry wins. */
function layerOf(file: string, layers: readonly (readonly string[])[]): number | undefined {
  let best: { index: number; length: number } | undefined;
  layers.forEach((layer, index) => {
    for (const entry of layer) {
      const matches = entry.endsWith('/') ? file.startsWith(entry) : file === entry;
      if (matches && (!best || entry.length > best.length)) best = { index, length: entry.length };
    }
  });
  return best?.index;
}

/** Every module specifier of a file: imports (type-only too), re-exports, import() and require(). */
function specifiers(path: string): string[] {
  const info = ts.preProcessFile(readFileSync(path, 'utf8'), true, true);
  return info.importedFiles.map((ref) => ref.fileName);
}

/** A relative specifier as a src-relative .ts path; undefined for packages and node: modules. */
function resolveSpecifier(
  srcDir: string,
  fromFile: string,
  specifier: string,
  known: ReadonlySet<string>,
): string | undefined | null {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(join(srcDir, fromFile)), specifier);
  const candidates = [
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.js$/, '.tsx'),
    `${base}.ts`,
    join(base, 'index.ts'),
  ];
  for (const candidate of candidates) {
    const rel = relative(srcDir, candidate).split(sep).join('/');
    if (known.has(rel)) return rel;
  }
  return null;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  function visit(node: string): void {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || graph.get(node)?.has(node)) found.push(component.sort());
    }
  }
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

/** Checks the import graph of `srcDir` against `layers`; an empty list means all is well. */
export function checkLayers(
  srcDir: string,
  layers: readonly (readonly string[])[] = LAYERS,
): Problem[] {
  const files = sourceFiles(srcDir).map((path) => relative(srcDir, path).split(sep).join('/'));
  const known = new Set(files);
  const problems: Problem[] = [];
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const edges = new Set<string>();
    graph.set(file, edges);
    const from = layerOf(file, layers);
    if (from === undefined) {
      problems.push({
        kind: 'unlayered',
        message: `${file} is in no layer: add it (or its folder) to LAYERS in scripts/check-layers.ts`,
      });
    }
    for (const specifier of specifiers(join(srcDir, file))) {
      const target = resolveSpecifier(srcDir, file, specifier, known);
      if (target === undefined) continue;
      if (target === null) {
        problems.push({
          kind: 'unresolved',
          message: `${file} imports ${specifier}, which is not a file of src/`,
        });
        continue;
      }
      edges.add(target);
      const to = layerOf(target, layers);
      if (from !== undefined && to !== undefined && to < from) {
        problems.push({
          kind: 'upward',
          message: `${file} (layer ${layers[from]!.join(' ')}) imports ${target}, which is above it (layer ${layers[to]!.join(' ')})`,
        });
      }
    }
  }
  for (const component of cycles(graph)) {
    problems.push({ kind: 'cycle', message: `import cycle: ${component.join(' ⇄ ')}` });
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const srcDir = resolve(
    process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '../src'),
  );
  const problems = checkLayers(srcDir);
  for (const problem of problems) process.stderr.write(`layers: ${problem.message}\n`);
  if (problems.length > 0) process.exitCode = 1;
  else
    process.stdout.write(
      `layers: ${relative(process.cwd(), srcDir) || '.'} has no upward import and no cycle\n`,
    );
}
