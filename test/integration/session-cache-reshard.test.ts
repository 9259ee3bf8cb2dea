import { performance } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Auth, createAuth, redisStore } from '../../src/index.js';
import { keySlot } from '../../src/stores/cluster-slots.js';
import type { SessionStore } from '../../src/stores/session-store.js';
import { refusedSoon, uniquePrefix, untilCached } from '../helpers/auth.js';
import { decodeSegment, SECRET } from '../helpers/forge.js';
import { RedisCluster } from '../helpers/redis-cluster.js';

/*
 * The session cache on a Redis Cluster that reshards: a slot, with the session hashes in it,
 * moves to a master that joined after the app started, which no invalidation feed of the app
 * listens to yet. Another instance then revokes a session in that slot, on the new master. The
 * instance that had cached the session must refuse it, and once it has learned the new master,
 * cache sessions there and hear their revocations too.
 */

interface Instance {
  auth: Auth;
  store: SessionStore;
  client: Cluster;
}

let cluster: RedisCluster;
const instances: Instance[] = [];

function instance(prefix: string): Instance {
  const client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port }))).on(
    'error',
    () => {},
  );
  const store = redisStore(client, { keyPrefix: prefix, sessionCache: true });
  const made = { auth: createAuth({ secret: SECRET, store }), store, client };
  instances.push(made);
  return made;
}

/** A user id whose session hash (`<prefix>{u:<id>}`) is in `slot`. */
function userInSlot(slot: number, prefix: string): string {
  for (let i = 0; i < 1_000_000; i++) {
    if (keySlot(`${prefix}{u:user-${i}}`) === slot) return `user-${i}`;
  }
  throw new Error(`no user id found for slot ${slot}`);
}

beforeAll(async () => {
  cluster = await RedisCluster.start(3);
}, 120_000);

afterAll(async () => {
  for (const { auth, client } of instances) {
    await auth.close();
    client.disconnect();
  }
  await cluster?.stop();
});

describe('session cache on a Cluster that reshards', () => {
  it('a slot moved to a new master: a revocation there is refused by the instance that cached the session, and the cache comes back over the new master', async () => {
    const prefix = uniquePrefix();
    const a = instance(prefix);
    const b = instance(prefix);
    const pair = await a.auth.generateTokens({ id: 'moving' });
    await untilCached(a, pair.access_token);
    const slot = keySlot(`${prefix}{u:moving}`);

    const added = await cluster.addMaster();
    await cluster.moveSlot(slot, added);
    // The MIGRATE deleted the hash on its old master, whose feed told a: the answer is gone
    // before anyone revokes (a topology refresh, which drops the whole cache, would do as well).
    const { sid } = decodeSegment(pair.access_token, 1) as { sid: string };
    const deadline = performance.now() + 1000;
    while (a.store.cachedLiveness!('moving', sid, Date.now()) === true) {
      expect(performance.now(), 'still cached 1 s after the move').toBeLessThan(deadline);
      await tick();
    }

    // b reaches the session hash on its new master (its client follows the MOVED) and ends it.
    await b.auth.revokeAllSessions('moving');
    await refusedSoon(a, pair.access_token);

    // Back over the new master: a session in the moved slot is cached, and its revocation heard.
    const id = userInSlot(slot, prefix);
    const fresh = await b.auth.generateTokens({ id });
    await untilCached(a, fresh.access_token);
    await b.auth.revokeAllSessions(id);
    await refusedSoon(a, fresh.access_token);
  }, 120_000);
});
