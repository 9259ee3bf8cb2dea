import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { harnessRedisUrl } from '../helpers/auth.js';
import { decodeSegment } from '../helpers/forge.js';
import { call } from '../helpers/http.js';
import { freePort } from '../helpers/redis-server.js';

/*
 * `npm start` as the README's Quick start has a new user run it: the script's file under tsx,
 * sessions in memory without REDIS_URL and in Redis with it, then the Quick start's login, /me,
 * refresh and logout over HTTP. The login body and the shape of its answer come from the README.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as {
  scripts: Record<string, string>;
};
const readme = readFileSync(`${root}/README.md`, 'utf8');
const quickStart = readme.slice(
  readme.indexOf('## Quick start'),
  readme.indexOf('## Use it in your app'),
);
const loginLine = /curl -s -XPOST localhost:3000\/login .*\n.* -d '([^']+)'\n# (\{.*\})\n/.exec(
  quickStart,
);

let child: ChildProcess | undefined;

afterEach(async () => {
  await stop();
});

/** Ends the server this test started, by its PID, and waits for it to exit. */
async function stop(): Promise<void> {
  const running = child;
  child = undefined;
  if (!running || running.exitCode !== null || running.signalCode !== null) return;
  const exited = new Promise((resolve) => running.once('exit', resolve));
  running.kill('SIGTERM');
  await exited;
}

/**
 * Runs the `start` script's file as npm would (`tsx <file>` is `node --import tsx <file>` in one
 * process, so its PID is the server's), on a free port; resolves with its URL once it listens.
 */
async function npmStart(redisUrl: string | undefined): Promise<{ url: string; banner: string }> {
  const [runner, file] = pkg.scripts.start!.split(' ');
  expect(runner).toBe('tsx');
  const port = await freePort();
  // The user's shell, minus anything that would pick the store or secret for them.
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
  delete env.REDIS_URL;
  delete env.JWT_SECRET;
  if (redisUrl !== undefined) env.REDIS_URL = redisUrl;
  const started = spawn(process.execPath, ['--import', 'tsx', file!], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = started;
  let log = '';
  const url = `http://127.0.0.1:${port}`;
  const banner = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start did not listen:\n${log}`)), 30_000);
    const read = (d: Buffer) => {
      log += d.toString();
      const line = log.split('\n').find((l) => l.startsWith('koa-jwt-redis example on '));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    };
    started.stdout!.on('data', read);
    started.stderr!.on('data', read);
    started.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited (${code}):\n${log}`));
    });
  });
  return { url, banner };
}

/** The Quick start's requests; returns the session id of the login. */
async function quickStartFlow(url: string, onLogin?: (sid: string) => Promise<void>) {
  const login = await call(url, '/login', { body: JSON.parse(loginLine![1]!) });
  expect(login.status, login.text).toBe(200);
  // The answer the README prints: the same fields, both tokens JWTs.
  const shown = JSON.parse(loginLine![2]!) as Record<string, unknown>;
  expect(Object.keys(login.body).sort()).toEqual(Object.keys(shown).sort());
  expect(login.body).toMatchObject({
    token_type: shown.token_type,
    expires_in: shown.expires_in,
    access_token: expect.stringMatching(/^eyJ/),
    refresh_token: expect.stringMatching(/^eyJ/),
  });
  const sid = decodeSegment(login.body.access_token, 1).sid as string;
  await onLogin?.(sid);

  const me = await call(url, '/me', { token: login.body.access_token });
  expect(me.status, me.text).toBe(200);
  expect(me.body).toMatchObject({ sub: '1', name: 'alice', role: 'admin', sid });
  expect((await call(url, '/me')).status).toBe(401);

  const refreshed = await call(url, '/refresh', {
    body: { refresh_token: login.body.refresh_token },
  });
  expect(refreshed.status, refreshed.text).toBe(200);
  expect((await call(url, '/me', { token: refreshed.body.access_token })).status).toBe(200);
  const logout = await call(url, '/logout', {
    body: { refresh_token: refreshed.body.refresh_token },
  });
  expect(logout.status).toBe(204);
  const after = await call(url, '/me', { token: refreshed.body.access_token });
  expect(after.status).toBe(401);
  expect(after.body.error).toBe('token_revoked');
  return sid;
}

describe('npm start (examples/basic/server.ts)', () => {
  it('the README shows the script, its login line and its answer', () => {
    expect(pkg.scripts.start).toBe('tsx examples/basic/server.ts');
    expect(quickStart).toContain('npm install && npm start');
    expect(loginLine, 'the Quick start login curl and its answer').not.toBeNull();
  });

  it('without REDIS_URL: sessions in memory; login, /me, refresh and logout work', async () => {
    const { url, banner } = await npmStart(undefined);
    expect(banner).toBe(`koa-jwt-redis example on ${url} (sessions in memory)`);
    await quickStartFlow(url);
  });

  it('with REDIS_URL: sessions in that Redis; login, /me, refresh and logout work', async () => {
    const { url, banner } = await npmStart(harnessRedisUrl());
    expect(banner).toBe(`koa-jwt-redis example on ${url} (sessions in Redis)`);
    const redis = new Redis(harnessRedisUrl());
    try {
      // The example keeps the default keyPrefix, 'auth:'; alice is user 1.
      const sid = await quickStartFlow(url, async (id) => {
        expect(await redis.hexists('auth:{u:1}', id)).toBe(1);
      });
      expect(await redis.hexists('auth:{u:1}', sid)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});
