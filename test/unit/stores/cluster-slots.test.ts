import { describe, expect, it } from 'vitest';
import {
  slotsWithReplicasFromNodes,
  slotsWithReplicasFromShards,
  slotsWithReplicasFromSlots,
} from '../../../src/stores/cluster-slots.js';

/*
 * The three answers a Cluster store judges its shards' replicas from, in the shapes Redis 7.0
 * gives (read off a local Cluster with a paused replica flagged failing; the integration test in
 * cluster-replicas.test.ts asks a real one).
 */

/** The slots set to 1, as from-to ranges. */
function ranges(slots: Uint8Array): [number, number][] {
  const found: [number, number][] = [];
  for (let slot = 0; slot < slots.length; slot++) {
    if (slots[slot] !== 1) continue;
    const last = found.at(-1);
    if (last && last[1] === slot - 1) last[1] = slot;
    else found.push([slot, slot]);
  }
  return found;
}

const node = (id: string, role: string, health: string, offset: number) => [
  'id',
  id,
  'port',
  7000,
  'ip',
  '127.0.0.1',
  'endpoint',
  '127.0.0.1',
  'role',
  role,
  'replication-offset',
  offset,
  'health',
  health,
];

describe('slotsWithReplicasFromShards', () => {
  const shards = [
    [
      'slots',
      [0, 5460],
      'nodes',
      [node('a', 'master', 'online', 14), node('a1', 'replica', 'fail', 0)],
    ],
    [
      'slots',
      [5461, 6000, 6002, 10922],
      'nodes',
      [node('b', 'master', 'online', 14), node('b1', 'replica', 'loading', 0)],
    ],
    ['slots', [10923, 16383, 6001, 6001], 'nodes', [node('c', 'master', 'online', 14)]],
    // A master with no slots (just added), with a replica.
    ['slots', [], 'nodes', [node('d', 'master', 'online', 0), node('d1', 'replica', 'online', 0)]],
  ];
  const withReplicas = [
    [0, 6000],
    [6002, 10922],
  ];

  it('marks the slots of every shard that lists a replica, failing or syncing ones included', () => {
    expect(ranges(slotsWithReplicasFromShards(shards)!)).toEqual(withReplicas);
  });

  it("reads the maps as ioredis hands them with replyMapping: 'resp3' (objects), or as Maps", () => {
    const pairs = (list: unknown[]) =>
      Array.from({ length: list.length / 2 }, (_, i) => [String(list[2 * i]), list[2 * i + 1]]);
    const asObject = (list: unknown[]) => Object.fromEntries(pairs(list));
    const asMap = (list: unknown[]) => new Map(pairs(list) as [string, unknown][]);
    for (const shape of [asObject, asMap]) {
      const reply = shards.map((shard) => {
        const nodes = (shard[3] as unknown[][]).map(shape);
        return shape(['slots', shard[1], 'nodes', nodes]);
      });
      expect(ranges(slotsWithReplicasFromShards(reply)!), shape.name).toEqual(withReplicas);
    }
  });

  it('answers undefined for a reply of another shape, not "no replica"', () => {
    for (const reply of [
      undefined,
      null,
      'OK',
      42,
      [[]],
      [['slots', 'x', 'nodes', 3]],
      [['nodes']],
    ])
      expect(slotsWithReplicasFromShards(reply)).toBeUndefined();
    expect(ranges(slotsWithReplicasFromShards([])!)).toEqual([]);
  });
});

describe('slotsWithReplicasFromNodes', () => {
  it('marks the slots of every master a replica is listed for, a failing one included', () => {
    const nodes = [
      'a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460',
      'a1 127.0.0.1:7003@17003 slave,fail a 1796313112604 1796313112098 1 disconnected',
      'b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922 [5462->-c]',
      'b1 127.0.0.1:7004@17004 slave b 0 0 2 connected',
      'c 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383',
      '',
    ].join('\n');
    expect(ranges(slotsWithReplicasFromNodes(nodes))).toEqual([[0, 10922]]);
  });
});

describe('slotsWithReplicasFromSlots', () => {
  it('marks the ranges the slot map lists a replica for (it leaves out a failing one)', () => {
    const slots = [
      [0, 5460, ['127.0.0.1', 7000, 'a', []]],
      [5461, 10922, ['127.0.0.1', 7001, 'b', []], ['127.0.0.1', 7004, 'b1', []]],
      [10923, 16383, ['127.0.0.1', 7002, 'c', []]],
    ];
    expect(ranges(slotsWithReplicasFromSlots(slots))).toEqual([[5461, 10922]]);
  });
});
