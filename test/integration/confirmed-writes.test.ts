import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type Auth, createAuth } from '../../src/index.js';
import { SECRET } from '../helpers/forge.js';
import { monitorOf } from '../helpers/monitor.js';
import { RedisServer } from '../helpers/redis-server.js';

/*
 * waitForReplicas on a master and its replica of this file's own: a write is answered as done
 * only once the replica has it, even when Redis has lost the write scripts meanwhile.
 */

let master: RedisServer | undefined;
let replica: RedisServer | undefined;
let auth: Auth | undefined;
let admin: Redis | undefined;

afterEach(async () => {
  replica?.resume();
  await auth?.close();
  admin?.disconnect();
  await replica?.stop();
  await master?.stop();
  [auth, admin, replica, master] = [undefined, undefined, undefined, undefined];
});

async function linked(port: number): Promise<void> {
  const node = new Redis({ port, lazyConnect: true }).on('error', () => {});
  try {
    for (let i = 0; i < 200; i++) {
      if (/master_link_status:up/.test(await node.info('replication'))) return;
      await sleep(50);
    }
    throw new Error('the replica did not link up');
  } finally {
    node.disconnect();
  }
}

describe('confirmed writes (waitForReplicas)', () => {
  it('after SCRIPT FLUSH, a write the frozen replica never saw answers 503, not 200', async () => {
    master = await RedisServer.start();
    replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(master.port)]);
    await linked(replica.port);
    auth = createAuth({ secret: SECRET, redis: master.url, waitForReplicas: 1, storeTimeout: 500 });
    // Confirmed while the replica follows; the writer connection has now run the scripts.
    await auth.generateTokens({ id: 'u1' });
    await auth.generateTokens({ id: 'u2' });
    // Redis forgets every script (an operator's SCRIPT FLUSH, or eviction), then the replica stops.
    admin = new Redis(master.url).on('error', () => {});
    expect(await admin.script('FLUSH')).toBe('OK');
    replica.pause();
    await expect(auth.generateTokens({ id: 'u3' })).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    // Nothing is sent once the login was answered 503: the script's text, resent after the WAIT
    // that ran out with the deadline, would record a session nobody was given.
    await sleep(1000);
    expect(await admin.keys('auth:*u3*')).toEqual([]);
    // Back: confirmed again.
    replica.resume();
    await linked(replica.port);
    expect((await auth.generateTokens({ id: 'u4' })).access_token).toEqual(expect.any(String));
  });

  it('a script Redis lost is sent again with its text, and the WAIT that confirms it follows it on the same connection', async () => {
    master = await RedisServer.start();
    replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(master.port)]);
    await linked(replica.port);
    auth = createAuth({
      secret: SECRET,
      redis: master.url,
      waitForReplicas: 1,
      storeTimeout: 1000,
    });
    await auth.generateTokens({ id: 'u1' });
    admin = new Redis(master.url).on('error', () => {});
    await admin.script('FLUSH');
    const monitor = await monitorOf(admin);
    const seen: { command: string; source: string }[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const command = String(args[0]).toLowerCase();
      if (['eval', 'evalsha', 'wait'].includes(command)) seen.push({ command, source });
    });
    try {
      await auth.generateTokens({ id: 'u2' });
      await sleep(100);
    } finally {
      monitor.disconnect();
    }
    // The lost EVALSHA and its WAIT, then the script with its text and the WAIT that confirms it.
    expect(seen.map((s) => s.command)).toEqual(['evalsha', 'wait', 'eval', 'wait']);
    expect(new Set(seen.map((s) => s.source)).size).toBe(1);
  });
});
