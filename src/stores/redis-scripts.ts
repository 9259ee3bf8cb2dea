/**
 * The store's Lua scripts as ioredis calls them: registered on a client (`defineCommand`), their
 * batched forms for a single node, and the confirmed-write path that sends a script with a `WAIT`
 * in one pipeline and follows a Cluster's redirections itself (see confirmedWrite).
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { natMapped, type IoRedisClient } from './redis-connection.js';
import {
  CREATE_SESSION,
  CREATE_SESSIONS,
  READ_CORES,
  READ_RECORDS,
  REVOKE_ALL,
  REVOKE_SESSION,
  ROTATE_SESSION,
  ROTATE_SESSIONS,
} from './lua.js';

const SCRIPTS = {
  kjrCreateSession: CREATE_SESSION,
  kjrRotateSession: ROTATE_SESSION,
  kjrRevokeSession: REVOKE_SESSION,
  kjrRevokeAll: REVOKE_ALL,
} as const;
export type ScriptName = keyof typeof SCRIPTS;
export type ScriptArgs = (string | number | Buffer)[];

/**
 * The batched forms (READ_CORES, and batchedScript's for the write scripts): the key count, the
 * keys, then the arguments; one result per key, or its error.
 */
type Batched = (count: number, ...argv: ScriptArgs) => Promise<unknown[]>;
const BATCHED_SCRIPTS = {
  kjrCreateSessions: CREATE_SESSIONS,
  kjrRotateSessions: ROTATE_SESSIONS,
  kjrReadCores: READ_CORES,
  kjrReadRecords: READ_RECORDS,
} as const;
export type BatchedName = keyof typeof BATCHED_SCRIPTS;
/** Each write script that goes out batched on a single node, and its batched form. */
export const BATCHED_WRITES: Partial<Record<ScriptName, BatchedName>> = {
  kjrCreateSession: 'kjrCreateSessions',
  kjrRotateSession: 'kjrRotateSessions',
};
export type Write = { key: string; args: ScriptArgs };
/** A batched read: a field (a session id) of a user's hash. */
export type Read = { key: string; field: string };
/**
 * Calls a batched script on a client (a promise of its results) or a pipeline (queued): `command`
 * is its name, or for the reads the form that answers Buffers (`<name>Buffer`, which ioredis
 * defines beside it), since a core record may be binary (record-codec.ts).
 */
export const batched = (target: object, command: string, count: number, argv: ScriptArgs) =>
  (target as Record<string, Batched>)[command]!(count, ...argv);
/**
 * A client or a pipeline with the write scripts `defineCommand` added (prefixed so they cannot
 * clash with the app's own).
 */
export type ScriptedTarget = Record<ScriptName, (key: string, ...argv: ScriptArgs) => unknown>;

type PipelineResults = [Error | null, unknown][] | null;

/** Hops a confirmed write follows on a Cluster: a MOVED (or a replica's refusal), then an ASK of a slot moved meanwhile. */
const MAX_REDIRECTIONS = 2;
/**
 * A script's write refused by a replica, as Redis 6 (inside "Error running script") and 7 word it.
 * A Cluster replica runs a script itself on a connection that sent READONLY, as ioredis's pool
 * does for the replicas it knows.
 */
const ON_A_REPLICA = /READONLY You can't write against a read only replica/;
/** A Cluster's redirection, as Redis words it: `MOVED <slot> <host:port>` or `ASK …`. */
const REDIRECTION = /^(MOVED|ASK) \d+ (\S+)$/;
/**
 * A script call for confirmed writes, queued on a pipeline as plain EVALSHA, or as EVAL of its
 * text when `text`. Not ioredis's defined command: that one answers a NOSCRIPT (a SCRIPT FLUSH,
 * an evicted script) by sending the script again outside the pipeline, after the WAIT beside it
 * has already counted the replicas: a write answered as confirmed that no replica was asked
 * about. A plain EVALSHA's NOSCRIPT comes back in the pipeline's results instead, and
 * confirmedWrite sends the pair again as EVAL.
 */
export type Evaluate = (target: object, text: boolean) => unknown;
type EvalTarget = Record<
  'eval' | 'evalsha',
  (script: string, keys: number, ...argv: ScriptArgs) => unknown
>;
/** A script as EVALSHA or EVAL names it. */
const evaluation = (
  lua: string,
): ((target: object, text: boolean, keys: number, argv: ScriptArgs) => unknown) => {
  // Hashed on first use: only confirmed writes (waitForReplicas) send scripts this way.
  let sha: string | undefined;
  return (target, text, keys, argv) =>
    text
      ? (target as EvalTarget).eval(lua, keys, ...argv)
      : (target as EvalTarget).evalsha(
          (sha ??= createHash('sha1').update(lua).digest('hex')),
          keys,
          ...argv,
        );
};
export const EVALUATE = Object.fromEntries(
  Object.entries({ ...SCRIPTS, ...BATCHED_SCRIPTS }).map(([name, lua]) => [name, evaluation(lua)]),
) as Record<ScriptName | BatchedName, ReturnType<typeof evaluation>>;

/**
 * A write script and its `WAIT`, in one pipeline on one connection: WAIT counts the replicas
 * that have what this connection wrote. On a Cluster, ioredis follows a pipeline's redirection
 * only when every command in it failed alike, and a redirected script beside a WAIT that ran (or
 * failed on a replica) is not that: the write would answer 503 until something else refreshed
 * the slot map, for good after a failover. So a MOVED or an ASK for the script (which then did
 * not run) is followed here: the pair goes again, on the named node's own connection of the
 * writer's pool (after ASKING for an ASK), and a MOVED refreshes the writer's slot map and calls
 * `moved` (the slot's shard may differ in replicas). Nothing is sent past `deadline`, when the
 * caller has stopped waiting: a write answered 503 must not happen later; each WAIT waits what
 * is left until then.
 */
export async function confirmedWrite(
  client: IoRedisClient,
  evaluate: Evaluate,
  wanted: number,
  deadline: number,
  moved: () => void,
): Promise<PipelineResults> {
  const scriptError = (answered: PipelineResults) => answered?.[0]?.[0]?.message ?? '';
  const once = async (target: IoRedisClient, text: boolean, asking: boolean) => {
    const pipeline = target.pipeline();
    if (asking) pipeline.asking();
    evaluate(pipeline, text);
    pipeline.wait(wanted, Math.max(1, deadline - Date.now()));
    const answered: PipelineResults = await pipeline.exec();
    return asking && answered !== null ? answered.slice(1) : answered;
  };
  const send = async (target: IoRedisClient, asking: boolean) => {
    const answered = await once(target, false, asking);
    // Redis lost the script (first use on this server, a SCRIPT FLUSH): once more, with its
    // text, unless the WAIT beside it ran out with the deadline (the caller answered 503).
    return scriptError(answered).startsWith('NOSCRIPT') && Date.now() < deadline
      ? once(target, true, asking)
      : answered;
  };
  let results = await send(client, false);
  for (let hop = 0; client.isCluster && hop < MAX_REDIRECTIONS; hop++) {
    const cluster = client as Cluster;
    const error = scriptError(results);
    // Where the pair goes again: the Cluster (by its slot map) or the named node's connection.
    let target: IoRedisClient = client;
    let asking = false;
    if (ON_A_REPLICA.test(error)) {
      // The pair reached a replica on a connection the pool keeps READONLY (a redirection
      // followed to a node that has become a replica since, by a view older than the pool's):
      // Redis ran the script there and refused its first write, so nothing was written. The
      // slot map is asked again and the pair goes to the slot's master.
      await slotMapRefreshed(cluster);
      moved();
    } else {
      const redirection = REDIRECTION.exec(error);
      if (redirection === null) break;
      const [, kind, address] = redirection;
      let node = nodeAt(cluster, address!);
      if (node === undefined) {
        // A node the pool has no connection to (a replica promoted since the pool's last slot
        // map, which may have left it out): the refreshed map connects to it.
        // RedisStore.runScript bounds the wait.
        await slotMapRefreshed(cluster);
        node = nodeAt(cluster, address!);
        if (node === undefined) break;
      } else if (kind === 'MOVED') cluster.refreshSlotsCache();
      if (kind === 'MOVED') moved();
      target = node;
      asking = kind === 'ASK';
    }
    if (Date.now() >= deadline) break;
    results = await send(target, asking);
  }
  return results;
}

/** Settles once the Cluster has asked for its slot map again (whether or not a node answered). */
const slotMapRefreshed = (cluster: Cluster): Promise<void> =>
  new Promise((resolve) => cluster.refreshSlotsCache(() => resolve()));

/**
 * The pool's connection to the node a redirection names, by its address as Redis gives it (the
 * Cluster's `natMap`, when it has one, turns that into the address the pool connected to).
 */
function nodeAt(cluster: Cluster, address: string): Redis | undefined {
  const mapped = natMapped(cluster.options.natMap, address);
  const wanted = mapped ? `${mapped.host}:${mapped.port}` : address;
  return cluster
    .nodes('all')
    .find((n) => `${n.options.host ?? ''}:${n.options.port ?? ''}` === wanted);
}

/** Registers the scripts on a client; the batched forms (their key count an argument) only off a Cluster, which never batches. */
export function defineScripts(client: IoRedisClient): void {
  for (const [name, lua] of Object.entries(SCRIPTS))
    client.defineCommand(name, { numberOfKeys: 1, lua });
  if (!client.isCluster)
    for (const [name, lua] of Object.entries(BATCHED_SCRIPTS)) client.defineCommand(name, { lua });
}
