/**
 * The versions this build is compatible with, as semver counts them: the minor while the package
 * is at 0.x, the major from 1.0. It keys the state the package keeps on globalThis (the default
 * instance, auth.ts), which the ESM and CommonJS builds of one version share, and two different
 * versions installed side by side (an app's and a dependency's) must not: one version's free
 * functions would otherwise call the other's instance. test/unit/version.test.ts checks it
 * against package.json.
 */
export const COMPATIBLE_VERSIONS = '0.2';
