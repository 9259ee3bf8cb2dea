import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { checkLayers } from '../../../scripts/check-layers.js';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '../../../src');
const LAYERS = [['top.ts'], ['mid/'], ['low.ts']];

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function tree(files: Record<string, string>): string {
  dir = mkdtempSync(join(tmpdir(), 'layers-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('the layer check (scripts/check-layers.ts)', () => {
  it('finds no upward import and no cycle in src/', () => {
    expect(checkLayers(SRC)).toEqual([]);
  });

  it('reports an upward import, type-only ones included', () => {
    const root = tree({
      'top.ts': "import { a } from './mid/a.js';\nexport const t = a;\n",
      'mid/a.ts': 'export const a = 1;\n',
      'low.ts': "import type { T } from './top.js';\nexport type L = T;\n",
    });
    expect(checkLayers(root, LAYERS)).toEqual([
      expect.objectContaining({
        kind: 'upward',
        message: expect.stringMatching(/^low\.ts .* top\.ts/),
      }),
    ]);
  });

  it('reports a cycle inside one layer, and a file in no layer', () => {
    const root = tree({
      'mid/a.ts': "export { b } from './b.js';\nexport const a = 1;\n",
      'mid/b.ts': "import { a } from './a.js';\nexport const b = a;\n",
      'stray.ts': 'export {};\n',
    });
    const kinds = checkLayers(root, LAYERS).map((p) => p.kind);
    expect(kinds.sort()).toEqual(['cycle', 'unlayered']);
  });
});
