/**
 * Gives V8 back its fast path for string methods, which loading ioredis 6 takes away from the
 * whole process. ioredis 6 declares a subclass of String (its RESP3 VerbatimString), and declaring
 * one puts String.prototype into V8's dictionary mode (Node 20; `node --allow-natives-syntax`,
 * `%HasFastProperties`). From then on V8's optimised code makes every `text.slice(…)`,
 * `text.charCodeAt(…)` or `text.toLowerCase()` a generic property lookup instead of a direct
 * call, in Koa's and Node's code as in the library's: under callgrind, a refresh runs about 8 %
 * fewer instructions with String.prototype repaired, a bare Koa request about 2 %
 * (docs/PERFORMANCE.md).
 *
 * A property read through an object that inherits from String.prototype, repeated until V8 keeps
 * feedback for it, makes V8 turn that prototype chain back into fast mode, as the first use of a
 * VerbatimString would; once repaired, it stays fast when code loaded later declares another
 * subclass of String. Only V8's internal layout changes: no value, property or result a program
 * reads. Where there is nothing to repair (ioredis 5, another engine) it does nothing, and a
 * bundler or minifier that drops or reshapes these reads only loses the speed-up.
 *
 * redis-connection.ts, the module that imports ioredis, calls it once as it loads.
 */
export function restoreFastStringMethods(): void {
  const probe = Object.create(String.prototype) as string;
  const read = (value: string) => value.charCodeAt;
  // V8 keeps feedback for a function once it has run a while: about 8 calls of one this small on
  // Node 20 (3 were not enough, 10 were); 100 leave room and take microseconds, once.
  for (let i = 0; i < 100; i++) read(probe);
}
