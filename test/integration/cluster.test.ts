import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/basic/app.js';
import { type Auth, createAuth } from '../../src/index.js';
import { allKeys, clusterClient, uniquePrefix } from '../helpers/auth.js';
import { SECRET } from '../helpers/forge.js';
import { call, serve, type Served } from '../helpers/http.js';
import { RedisCluster } from '../helpers/redis-cluster.js';

/**
 * Cluster-specific behaviour on a private 3-master cluster (the shared suite also runs on the
 * harness cluster, in the `cluster` vitest project): users spread over the masters, every
 * feature works across them, and a hung cluster answers 503 in bounded time.
 */
let cluster: RedisCluster;
let client: Cluster;
let auth: Auth;
let server: Served;
let prefix: string;

beforeAll(async () => {
  cluster = await RedisCluster.start(3);
  client = clusterClient(cluster.ports);
  prefix = uniquePrefix();
  // Strict reuse detection: this test presents rotated tokens and expects refresh_reused at once.
  auth = createAuth({ secret: SECRET, redis: client, keyPrefix: prefix, refreshGracePeriod: 0 });
  server = await serve(createApp(auth));
});
afterAll(async () => {
  await server?.close();
  await auth?.close();
  client?.disconnect();
  await cluster?.stop();
});

describe('on a Redis Cluster', () => {
  it('spreads users over every master, and every helper works on each of them', async () => {
    const users = Array.from({ length: 24 }, (_, i) => `user-${i}`);
    const pairs = await Promise.all(users.map((id) => auth.generateTokens({ id })));
    // One key per user, and users land on all three masters.
    const holders = new Set<string>();
    for (const node of client.nodes('master')) {
      if ((await node.keys(`${prefix}*`)).length > 0) holders.add(`${node.options.port}`);
    }
    expect(holders.size).toBe(3);
    expect(await allKeys(client, `${prefix}*`)).toHaveLength(users.length);

    const rotated = await Promise.all(pairs.map((pair) => auth.refreshTokens(pair.refresh_token)));
    for (const [i, pair] of pairs.entries()) {
      await expect(auth.refreshTokens(pair.refresh_token)).rejects.toMatchObject({
        code: 'refresh_reused',
      });
      expect(await auth.checkRefreshToken(rotated[i]!.refresh_token)).toBe(false);
    }
    const again = await Promise.all(users.map((id) => auth.generateTokens({ id })));
    for (const [i, id] of users.entries()) {
      expect(await auth.listSessions(id)).toHaveLength(1);
      expect((await call(server.url, '/me', { token: again[i]!.access_token })).status).toBe(200);
    }
    await auth.invalidateRefreshToken(again[0]!.refresh_token);
    expect((await call(server.url, '/me', { token: again[0]!.access_token })).body.error).toBe(
      'token_revoked',
    );
    for (const id of users.slice(1)) expect(await auth.revokeAllSessions(id)).toBe(1);
    expect(await allKeys(client, `${prefix}*`)).toEqual([]);
  });

  it("a client keyPrefix with a hash tag: every key on one master, and every helper still works (with the warning's claim checked)", async () => {
    const tag = `{${uniquePrefix().replace(/[^a-z0-9]/gi, '')}}:`;
    const tagged = clusterClient(cluster.ports);
    // ioredis reads keyPrefix per command: set before the client is first used.
    const options = tagged.options as { keyPrefix?: string };
    options.keyPrefix = tag;
    const own = createAuth({ secret: SECRET, redis: tagged, refreshGracePeriod: 0 });
    const app = await serve(createApp(own));
    try {
      const users = Array.from({ length: 12 }, (_, i) => `tagged-${i}`);
      const pairs = await Promise.all(users.map((id) => own.generateTokens({ id })));
      const holders: string[] = [];
      for (const node of client.nodes('master'))
        if ((await node.keys(`${tag}*`)).length > 0) holders.push(`${node.options.port}`);
      expect(holders).toHaveLength(1);
      expect(await allKeys(client, `${tag}*`)).toHaveLength(users.length);
      const rotated = await Promise.all(pairs.map((p) => own.refreshTokens(p.refresh_token)));
      await expect(own.refreshTokens(pairs[0]!.refresh_token)).rejects.toMatchObject({
        code: 'refresh_reused',
      });
      expect((await call(app.url, '/me', { token: rotated[1]!.access_token })).status).toBe(200);
      await own.invalidateRefreshToken(rotated[1]!.refresh_token);
      expect((await call(app.url, '/me', { token: rotated[1]!.access_token })).status).toBe(401);
      for (const id of users.slice(2)) expect(await own.revokeAllSessions(id)).toBe(1);
      expect(await allKeys(client, `${tag}*`)).toEqual([]);
    } finally {
      await app.close();
      await own.close();
      tagged.disconnect();
    }
  });

  it('paused masters (SIGSTOP): 503 within 2 s, then recovers when they resume', async () => {
    const { access_token, refresh_token } = await auth.generateTokens({ id: 'paused' });
    for (const node of cluster.nodes) node.pause();
    try {
      for (const [path, options] of [
        ['/me', { token: access_token }],
        ['/refresh', { body: { refresh_token } }],
        ['/login', { body: { username: 'alice', password: 'wonderland' } }],
      ] as const) {
        const started = Date.now();
        const reply = await call(server.url, path, options);
        expect(reply.status, path).toBe(503);
        expect(reply.body.error).toBe('store_unavailable');
        expect(Date.now() - started, path).toBeLessThan(2000);
      }
    } finally {
      for (const node of cluster.nodes) node.resume();
    }
    let me = await call(server.url, '/me', { token: access_token });
    for (let i = 0; i < 50 && me.status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      me = await call(server.url, '/me', { token: access_token });
    }
    expect(me.status).toBe(200);
  });

  it("the README's flush command for a Cluster, run against each master, deletes every session key of users whose ids hold quotes and spaces", async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### What a flush does'));
    const command = /# On a Cluster[^\n]*\n(.+)\n/.exec(section)?.[1];
    expect(command).toContain('<master>');
    const users = Array.from({ length: 12 }, (_, i) => [`o'brien ${i}`, `say "hi" ${i}`][i % 2]!);
    const pairs = await Promise.all(users.map((id) => auth.generateTokens({ id })));
    // One key a user, beside what this file's earlier tests left under the prefix.
    expect((await allKeys(client, `${prefix}*`)).length).toBeGreaterThanOrEqual(users.length);
    await client.set(`other-data-${prefix}`, 'kept');
    for (const node of client.nodes('master')) {
      const run = spawnSync(
        'bash',
        [
          '-c',
          command!
            .replaceAll("'auth:*'", `'${prefix}*'`)
            .replaceAll('<master>', `127.0.0.1 -p ${node.options.port}`),
        ],
        { encoding: 'utf8' },
      );
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
    }
    expect(await allKeys(client, `${prefix}*`)).toEqual([]);
    expect(await client.get(`other-data-${prefix}`)).toBe('kept');
    await client.del(`other-data-${prefix}`);
    for (const pair of pairs) expect(await auth.checkRefreshToken(pair.refresh_token)).toBe(false);
  });
});
