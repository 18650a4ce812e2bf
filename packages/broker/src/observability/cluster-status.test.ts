import { describe, expect, it } from 'vitest';
import type { GroupStatus } from '../engine/cluster.js';
import { partitionViews } from './cluster-status.js';

const group = (overrides: Partial<GroupStatus>): GroupStatus => ({
  group: 'p/orders/0',
  role: 'follower',
  leader: 'b2',
  term: 3,
  commit: 90,
  firstIndex: 1,
  lastIndex: 100,
  voters: ['b1', 'b2', 'b3'],
  replicas: [],
  ...overrides,
});

describe('partitionViews', () => {
  // replica-move-crash waits on it: a move's new replica copies segments (at the move throttle's rate) only once the
  // partition's log was compacted; before, it gets the Raft entries and the move is over at once.
  it('says from which Raft index each partition log is still held (above 1 once compacted into a snapshot)', () => {
    const views = partitionViews([group({ group: 'p/orders/0' }), group({ group: 'p/orders/1', firstIndex: 81 }), group({ group: 'meta', firstIndex: 7 })]);
    expect(views.map((v) => [v.partition, v.firstIndex])).toEqual([
      [0, 1],
      [1, 81],
    ]);
  });
});
