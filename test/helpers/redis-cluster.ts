import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, redisCli, RedisServer } from './redis-server.js';

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free port whose cluster bus port (port + 10000, as every Redis version derives it) is free
 * too and still a valid port: kernel-chosen ports go up to 60999, buses only up to 65535.
 */
async function clusterNodePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort();
    if (port + 10_000 <= 65_535 && (await isFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair (port, port + 10000) for a Redis Cluster node');
}

/** How many nodes a CLUSTER NODES reply lists as replicas (flagged `slave`, whatever else). */
function replicasListed(nodes: string): number {
  return nodes.split('\n').filter((line) => line.split(' ')[2]?.split(',').includes('slave'))
    .length;
}

function cli(port: number, ...args: string[]): string {
  const result = spawnSync('redis-cli', ['-p', String(port), ...args], {
    encoding: 'utf8',
    timeout: 5_000,
  });
  return `${result.stdout}${result.stderr}`;
}

/**
 * A Redis Cluster this test run owns: `masters` redis-servers with cluster mode on, each on a free
 * port with its own directory (so its nodes.conf), joined by `redis-cli --cluster create`; and
 * `replicas` replicas per master, for the failover tests (the harness needs none). `extraArgs`
 * go to every node's command line.
 */
export class RedisCluster {
  /** How many of the nodes were made replicas (by create or addReplica). */
  private replicaCount = 0;

  private constructor(readonly nodes: RedisServer[]) {}

  static async start(masters = 3, replicas = 0, extraArgs: string[] = []): Promise<RedisCluster> {
    try {
      return await RedisCluster.startOnce(masters, replicas, extraArgs);
    } catch (error) {
      // Ports are chosen free, then bound by redis-server a moment later: on a busy machine
      // another process can take one in between. A second try gets new ports.
      console.warn(`Redis Cluster did not start, trying again on new ports: ${String(error)}`);
      return RedisCluster.startOnce(masters, replicas, extraArgs);
    }
  }

  private static async startNode(extraArgs: string[] = []): Promise<RedisServer> {
    return RedisServer.start(
      [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '5000',
        ...extraArgs,
      ],
      await clusterNodePort(),
    );
  }

  private static async startOnce(
    masters: number,
    replicas: number,
    extraArgs: string[],
  ): Promise<RedisCluster> {
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < masters * (1 + replicas); i++)
        nodes.push(await RedisCluster.startNode(extraArgs));
      const cluster = new RedisCluster(nodes);
      await cluster.create(replicas);
      return cluster;
    } catch (error) {
      await Promise.all(nodes.map((node) => node.stop()));
      throw error;
    }
  }

  get ports(): number[] {
    return this.nodes.map((node) => node.port);
  }

  private async create(replicas: number): Promise<void> {
    const addresses = this.ports.map((port) => `127.0.0.1:${port}`);
    const result = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...addresses,
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      // Bounded: redis-cli waits for the nodes to agree with no limit of its own, and a hung
      // spawnSync blocks the whole test process, timers and reporters included.
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (result.status !== 0)
      throw new Error(
        `redis-cli --cluster create failed (${result.signal ? `killed by ${result.signal} after 60 s` : `exit ${result.status}`}): ${result.stdout}${result.stderr}`,
      );
    this.replicaCount = (this.ports.length / (1 + replicas)) * replicas;
    // Slots are assigned at once, but nodes learn of each other by gossip.
    await this.untilSettled();
  }

  /**
   * Whether every node agrees the Cluster is whole: cluster_state:ok, every node known, every
   * slot served, every replica listed as one (Redis 6 takes a while to tell the others a node is
   * a replica, and lists it as a master without slots meanwhile) and each replica's link to its
   * master up. A master just restarted answers CLUSTERDOWN for its first seconds (Redis's
   * writable delay for a rejoining master) and so is not settled yet.
   */
  async settled(): Promise<boolean> {
    for (const port of this.ports) {
      const info = await redisCli(port, 'cluster', 'info');
      if (
        !/cluster_state:ok/.test(info) ||
        Number(/cluster_known_nodes:(\d+)/.exec(info)?.[1]) !== this.ports.length ||
        !/cluster_slots_ok:16384/.test(info) ||
        replicasListed(await redisCli(port, 'cluster', 'nodes')) !== this.replicaCount
      )
        return false;
      const replication = await redisCli(port, 'info', 'replication');
      if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication))
        return false;
    }
    return true;
  }

  /** Resolves once the Cluster is {@link settled}; throws after `ms`. */
  async untilSettled(ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await this.settled()) return;
      await sleep(100);
    }
    throw new Error(
      `the Redis Cluster on ports ${this.ports.join(', ')} did not settle (cluster_state:ok with every node known and every replica listed as one, its link up) in ${ms / 1000} s`,
    );
  }

  /**
   * A new node joined to the running Cluster as a replica of the master on `master`, once its
   * link to that master is up (stopped with the others).
   */
  async addReplica(master: number): Promise<number> {
    const node = await RedisCluster.startNode();
    this.nodes.push(node);
    cli(node.port, 'cluster', 'meet', '127.0.0.1', String(master));
    const masterId = cli(master, 'cluster', 'myid').trim();
    const deadline = Date.now() + 20_000;
    let replicating = false;
    while (Date.now() < deadline) {
      // REPLICATE needs the master known first (by the MEET's gossip), and only once: a second
      // one restarts the replication link.
      if (!replicating && cli(node.port, 'cluster', 'nodes').includes(masterId))
        replicating = cli(node.port, 'cluster', 'replicate', masterId).trim() === 'OK';
      if (replicating && /master_link_status:up/.test(cli(node.port, 'info', 'replication'))) {
        this.replicaCount++;
        return node.port;
      }
      await sleep(100);
    }
    throw new Error(`the node on ${node.port} did not become a replica of ${master} in 20 s`);
  }

  /**
   * A new, empty master joined to the running Cluster (stopped with the others), once every node
   * knows it and it has learned the slots (before that it answers CLUSTERDOWN).
   */
  async addMaster(): Promise<number> {
    const node = await RedisCluster.startNode();
    this.nodes.push(node);
    cli(node.port, 'cluster', 'meet', '127.0.0.1', String(this.nodes[0]!.port));
    const id = cli(node.port, 'cluster', 'myid').trim();
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (
        this.ports.every((port) => cli(port, 'cluster', 'nodes').includes(id)) &&
        /cluster_state:ok/.test(cli(node.port, 'cluster', 'info'))
      )
        return node.port;
      await sleep(100);
    }
    throw new Error(`the master on ${node.port} was not known to every node in 20 s`);
  }

  /**
   * Moves one hash slot, keys and all, to the master on `to`, as `redis-cli --cluster reshard`
   * does: IMPORTING on the target, MIGRATING on the source, MIGRATE of its keys in batches, then
   * the new owner announced to every master. Resolves once every node places the slot on `to`.
   */
  async moveSlot(slot: number, to: number): Promise<void> {
    const owner = (port: number): string | undefined => {
      for (const line of cli(port, 'cluster', 'nodes').split('\n')) {
        const [, address, flags, , , , , , ...ranges] = line.split(' ');
        if (!flags?.includes('master')) continue;
        for (const range of ranges) {
          const [low, high = low] = range.split('-').map(Number);
          if (slot >= low! && slot <= high!) return address!.split('@')[0]!.split(':')[1];
        }
      }
      return undefined;
    };
    const from = Number(owner(to));
    if (from === to) return;
    const fromId = cli(from, 'cluster', 'myid').trim();
    const toId = cli(to, 'cluster', 'myid').trim();
    const s = String(slot);
    cli(to, 'cluster', 'setslot', s, 'importing', fromId);
    cli(from, 'cluster', 'setslot', s, 'migrating', toId);
    for (;;) {
      const keys = cli(from, 'cluster', 'getkeysinslot', s, '100').split('\n').filter(Boolean);
      if (keys.length === 0) break;
      const moved = cli(from, 'migrate', '127.0.0.1', String(to), '', '0', '5000', 'keys', ...keys);
      if (!moved.startsWith('OK')) throw new Error(`MIGRATE of slot ${slot} failed: ${moved}`);
    }
    const masters = this.ports.filter((port) =>
      /role:master/.test(cli(port, 'info', 'replication')),
    );
    for (const port of [to, from, ...masters]) cli(port, 'cluster', 'setslot', s, 'node', toId);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (this.ports.every((port) => owner(port) === String(to))) return;
      await sleep(100);
    }
    throw new Error(`slot ${slot} was not placed on ${to} by every node in 20 s`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }
}
