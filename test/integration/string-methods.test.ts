import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const library = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

/**
 * Runs an ES module in a Node process of its own (V8's natives syntax on, the library's source
 * through tsx) and returns what it printed: `%HasFastProperties(String.prototype)` after each step.
 */
async function run(source: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', source],
    { cwd: root, timeout: 20_000 },
  );
  return stdout.trim().split('\n');
}

const FAST = 'console.log(%HasFastProperties(String.prototype));';

/**
 * ioredis 6 declares a subclass of String, which leaves String.prototype in V8's slow (dictionary)
 * mode for the whole process, and V8's optimised code then looks every string method up instead
 * of calling it (restoreFastStringMethods in src/stores/redis-connection.ts). The library puts it
 * back when it loads.
 */
describe('String.prototype stays fast with the library loaded (V8, ioredis 6)', () => {
  it('is slow after ioredis 6 alone: what the library repairs', async () => {
    // If this fails, ioredis (or V8) no longer slows string methods: restoreFastStringMethods can go.
    expect(await run(`import 'ioredis'; ${FAST}`)).toEqual(['false']);
  });

  it('is fast once the library has loaded, ioredis 6 with it', async () => {
    expect(await run(`import ${JSON.stringify(library)}; ${FAST}`)).toEqual(['true']);
  });

  it('stays fast when code loaded after the library declares a subclass of String', async () => {
    const lines = await run(`
      import ${JSON.stringify(library)};
      // What a second copy of ioredis 6, loaded after the library, does.
      class Later extends String {}
      ${FAST}
    `);
    expect(lines).toEqual(['true']);
  });
});
