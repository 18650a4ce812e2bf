import { describe, expect, it } from 'vitest';
import { manualMoveRefusal, MoveRefusedError, type ManualMoveView } from './manual-move.js';

/** orders/0 on b1, b2, b3 (b4 holds none); orders/1 on b2, b3, b4 with b1 receiving a copy. */
const view = (change: Partial<ManualMoveView> = {}): ManualMoveView => ({
  topic: 'orders',
  partition: 0,
  from: 'b1',
  to: 'b4',
  topics: [{ topic: 'orders', partitions: [{ replicas: ['b1', 'b2', 'b3'] }, { replicas: ['b2', 'b3', 'b4'], learners: ['b1'] }] }],
  members: ['b1', 'b2', 'b3', 'b4'],
  draining: [],
  moves: [],
  maxMoves: 4,
  ...change,
});
const move = (topic: string, partition: number): ManualMoveView['moves'][number] => ({ topic, partition, from: 'b2', to: 'b4', startedAtMs: 0 });

describe('manualMoveRefusal', () => {
  it('lets a move from a replica to a member holding none start', () => {
    expect(manualMoveRefusal(view())).toBeUndefined();
    // Another partition's move in progress, below the cap, is no obstacle.
    expect(manualMoveRefusal(view({ moves: [move('other', 0)] }))).toBeUndefined();
  });

  it.each([
    ['unknown-topic', 'INVALID_TOPIC', { topic: 'nope' }, /no topic "nope"/],
    ['unknown-partition', 'INVALID_PARTITION', { partition: 2 }, /topic orders has no partition 2 \(it has 2: 0 to 1\)/],
    ['unknown-broker', 'INVALID_ARGUMENT', { to: 'b9' }, /broker b9 is not a member of the cluster \(members: b1, b2, b3, b4\)/],
    ['unknown-broker', 'INVALID_ARGUMENT', { from: 'b9' }, /broker b9 is not a member/],
    ['same-broker', 'INVALID_ARGUMENT', { to: 'b1' }, /same broker \(b1\)/],
    ['target-is-replica', 'INVALID_ARGUMENT', { to: 'b2' }, /broker b2 holds a replica of orders\/0 already \(replicas: b1, b2, b3\)/],
    // A broker receiving a copy (a move's learner) counts as holding one.
    ['target-is-replica', 'INVALID_ARGUMENT', { partition: 1, from: 'b2', to: 'b1' }, /broker b1 holds a replica of orders\/1 already/],
    // The same move asked again once done: its source holds none any more.
    ['source-not-replica', 'INVALID_ARGUMENT', { from: 'b4', to: 'b1' }, /broker b4 holds no replica of orders\/0/],
    ['source-not-replica', 'INVALID_ARGUMENT', { from: 'b4', to: 'b5', members: ['b1', 'b2', 'b3', 'b4', 'b5'] }, /broker b4 holds no replica of orders\/0 \(replicas: b1, b2, b3\)/],
    ['replication-factor', 'FORBIDDEN', { draining: ['b4'] }, /broker b4 is being decommissioned: orders\/0 would be a replica short once it leaves/],
    ['moving-already', 'FORBIDDEN', { moves: [move('orders', 0)] }, /orders\/0 is moving already \(b2 to b4\)/],
    // The same move asked again while it runs (its target receives a copy): moving already, whatever else applies.
    ['moving-already', 'FORBIDDEN', { partition: 1, from: 'b2', to: 'b1', moves: [move('orders', 1)] }, /orders\/1 is moving already/],
    ['moves-at-cap', 'LIMIT_EXCEEDED', { moves: [move('a', 0), move('b', 0)], maxMoves: 2 }, /2 replica moves are in progress, the most at once \(--max-concurrent-moves 2\)/],
  ] as const)('refuses with reason %s (code %s)', (reason, code, change, message) => {
    const refusal = manualMoveRefusal(view(change as Partial<ManualMoveView>));
    expect(refusal).toBeInstanceOf(MoveRefusedError);
    expect(refusal).toMatchObject({ reason, code });
    expect(refusal?.message).toMatch(message);
  });
});
