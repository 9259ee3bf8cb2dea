import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    // Both builds run at once: spare the CLI's output from this one's clean.
    clean: ['!cli.js'],
    sourcemap: true,
    // import.meta.url in the CommonJS build (json-body.ts requires koa-body relative to itself).
    shims: true,
    target: 'node20',
    platform: 'node',
  },
  {
    // The `koa-jwt-redis` command (package.json `bin`): one ESM file; the shebang in src/cli.ts is kept.
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    dts: false,
    clean: false,
    sourcemap: false,
    target: 'node20',
    platform: 'node',
  },
]);
