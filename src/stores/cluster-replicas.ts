/**
 * Asks a Redis Cluster which of its shards have a replica, and asks again whenever that may have
 * changed: a Cluster store's writes wait for a replica only where one exists (see
 * RedisStore.runScript).
 */
import type { Cluster } from 'ioredis';
import { warnOnce } from '../config/validate.js';
import {
  slotsWithReplicasFromNodes,
  slotsWithReplicasFromShards,
  slotsWithReplicasFromSlots,
} from './cluster-slots.js';

/** How often a Cluster is asked again which of its shards have a replica (watchReplicas). */
const RECHECK_MS = 30_000;

/**
 * What a Cluster is asked about its replicas, in turn while it refuses one (watchReplicas): the
 * first two list every replica, a failing one included; the slot map only those that replicate.
 */
const REPLICA_QUESTIONS: readonly (readonly [
  string,
  (reply: unknown) => Uint8Array | undefined,
])[] = [
  ['NODES', (reply) => slotsWithReplicasFromNodes(String(reply))],
  ['SHARDS', slotsWithReplicasFromShards],
  ['SLOTS', slotsWithReplicasFromSlots],
];

/** A running {@link watchReplicas}. */
export interface ReplicaWatch {
  /** Settles with the first answer (never rejects: an unanswered question is asked again). */
  readonly first: Promise<void>;
  /** Asks again now (a MOVED: the slot's shard may differ in replicas). */
  recheck(): void;
  /** Ends the listeners and the timer; an answer still on its way is not passed on. */
  stop(): void;
}

/**
 * A Cluster's default: a write waits for one replica when the master of its shard has one, as
 * with Sentinel, because a master that dies is replaced by its replica, which may lack what
 * the master acknowledged last. A shard without a replica has no failover to lose a write to,
 * so its writes do not wait (and are not refused for want of a replica). Decided per hash slot
 * from `CLUSTER NODES` (which lists every replica; the slot map leaves out one that has not
 * replicated yet) at start, at every refresh of the slot map (a MOVED, so a migrated slot) and
 * every RECHECK_MS; `decided` gets each answer, one byte per slot (1: has a replica). A Cluster
 * that refuses the command (an ACL without it) is judged by `CLUSTER SHARDS` (Redis 7, which
 * lists every replica too), and one that refuses that as well by `CLUSTER SLOTS`, with a warning.
 * `bounded` bounds each question in time.
 */
export function watchReplicas(
  cluster: Cluster,
  bounded: <T>(command: Promise<T>) => Promise<T>,
  decided: (slots: Uint8Array) => void,
): ReplicaWatch {
  let stopped = false;
  let resolveFirst: () => void = () => {};
  const first = new Promise<void>((resolve) => (resolveFirst = resolve));
  // One question at a time; a reason to ask that comes meanwhile (a refresh after a MOVED)
  // asks again once it is answered, since the answer may predate the change.
  let asking = false;
  let again = false;
  const answered = (): void => {
    asking = false;
    if (again) {
      again = false;
      check();
    }
  };
  const judged = (slots: Uint8Array): void => {
    if (!stopped) decided(slots);
    resolveFirst();
    answered();
  };
  // Unanswered (connecting, timed out, LOADING): writes keep waiting, bounded; ask again soon.
  const retry = (): void => {
    again = false;
    asking = false;
    setTimeout(check, 200).unref();
  };
  const check = (): void => {
    if (stopped) return;
    if (asking) {
      again = true;
      return;
    }
    asking = true;
    ask(firstQuestion, []);
  };
  // The question that answered last: the next check starts there, so an ACL's refusals are
  // not asked again (and added to its ACL LOG) at every check.
  let firstQuestion = 0;
  // Asked in turn while an ACL refuses one (NOPERM), Redis lacks it (CLUSTER SHARDS is Redis
  // 7's) or its answer is of a shape not understood; any other failure is asked again.
  const ask = (question: number, passed: readonly string[]): void => {
    const [name, judge] = REPLICA_QUESTIONS[question]!;
    const last = question === REPLICA_QUESTIONS.length - 1;
    const next = (why: string): void => {
      if (last) retry();
      else ask(question + 1, [...passed, `CLUSTER ${name}: ${why}`]);
    };
    bounded(cluster.call('CLUSTER', name)).then(
      (reply) => {
        const slots = judge(reply);
        if (slots === undefined) return next('an answer of a shape not understood');
        if (last)
          warnOnce(
            'KOA_JWT_REDIS_CLUSTER_NODES',
            `${passed.join('; ')}: which shards' writes wait for a replica is judged from CLUSTER ${name}, which lists a replica only while it replicates (not one that is failing). Allow CLUSTER NODES (or CLUSTER SHARDS, Redis 7), or give waitForReplicas explicitly to decide it yourself.`,
          );
        firstQuestion = question;
        judged(slots);
      },
      (error: unknown) => {
        const { message } = error as Error;
        if (/^NOPERM|unknown subcommand/i.test(message)) next(message);
        else retry();
      },
    );
  };
  const timer = setInterval(check, RECHECK_MS).unref();
  cluster.on('refresh', check);
  cluster.on('ready', check);
  check();
  return {
    first,
    recheck: check,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      cluster.off('refresh', check);
      cluster.off('ready', check);
    },
  };
}
