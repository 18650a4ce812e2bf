import { describe, expect, it } from 'vitest';
import { MetadataState, parseMetadataSnapshot } from './metadata.js';
import { parseMoveCommand, planDrainMoves, planPreferredLeaders, planRebalanceMoves, replicasOn, type MovableTopic } from './moves.js';

/** A metadata state with `orders` (3 partitions, factor 3) on b1..b4. */
function state(): MetadataState {
  const metadata = new MetadataState(['b1', 'b2', 'b3', 'b4']);
  metadata.apply({ type: 'create-topic', topic: 'orders', partitions: 3, replicationFactor: 3, brokers: ['b1', 'b2', 'b3', 'b4'] });
  return metadata;
}
const replicasOf = (m: MetadataState, p: number): string[] => m.get('orders')?.partitions[p]?.replicas ?? [];

describe('replica moves in the metadata', () => {
  it('a move lists its target as a learner, then puts it in the old replica\'s place (keeping the order), and is gone', () => {
    const m = state();
    const before = replicasOf(m, 0);
    const from = before[0] as string;
    const to = ['b1', 'b2', 'b3', 'b4'].find((id) => !before.includes(id)) as string;
    expect(m.apply({ type: 'move-replica', topic: 'orders', partition: 0, from, to, atMs: 1000 })).toEqual({
      kind: 'move-started',
      move: { topic: 'orders', partition: 0, from, to, startedAtMs: 1000 },
    });
    expect(m.get('orders')?.partitions[0]).toEqual({ replicas: before, learners: [to] });
    expect(m.moves.all()).toHaveLength(1);
    // A second move of the same partition waits for this one.
    expect(m.apply({ type: 'move-replica', topic: 'orders', partition: 0, from: before[1] as string, to, atMs: 1001 })).toMatchObject({ kind: 'move-refused', reason: expect.stringMatching(/moving already/) });
    // Finishing names the move exactly.
    expect(m.apply({ type: 'finish-move', topic: 'orders', partition: 0, from: before[1] as string, to })).toMatchObject({ kind: 'move-refused' });
    expect(m.apply({ type: 'finish-move', topic: 'orders', partition: 0, from, to })).toMatchObject({ kind: 'move-finished' });
    expect(m.get('orders')?.partitions[0]).toEqual({ replicas: [to, ...before.slice(1)] });
    expect(m.moves.all()).toEqual([]);
  });

  it('refuses moves that do not apply', () => {
    const m = state();
    const [a, b] = replicasOf(m, 1) as [string, string];
    const outside = ['b1', 'b2', 'b3', 'b4'].find((id) => !replicasOf(m, 1).includes(id)) as string;
    expect(m.apply({ type: 'move-replica', topic: 'nope', partition: 0, from: a, to: outside, atMs: 0 })).toMatchObject({ kind: 'move-refused', reason: 'no partition nope/0' });
    expect(m.apply({ type: 'move-replica', topic: 'orders', partition: 9, from: a, to: outside, atMs: 0 })).toMatchObject({ kind: 'move-refused' });
    expect(m.apply({ type: 'move-replica', topic: 'orders', partition: 1, from: outside, to: a, atMs: 0 })).toMatchObject({ reason: `${outside} holds no replica of orders/1` });
    expect(m.apply({ type: 'move-replica', topic: 'orders', partition: 1, from: a, to: b, atMs: 0 })).toMatchObject({ reason: `${b} holds a replica of orders/1 already` });
    expect(m.moves.all()).toEqual([]);
    expect(m.get('orders')?.partitions[1]?.learners).toBeUndefined();
  });

  it('a cancelled move takes its learner away and leaves the replicas as they were', () => {
    const m = state();
    const before = replicasOf(m, 2);
    const to = ['b1', 'b2', 'b3', 'b4'].find((id) => !before.includes(id)) as string;
    m.apply({ type: 'move-replica', topic: 'orders', partition: 2, from: before[2] as string, to, atMs: 5 });
    expect(m.apply({ type: 'cancel-move', topic: 'orders', partition: 2, to: 'b9' })).toMatchObject({ kind: 'move-refused' });
    expect(m.apply({ type: 'cancel-move', topic: 'orders', partition: 2, to })).toMatchObject({ kind: 'move-cancelled' });
    expect(m.get('orders')?.partitions[2]).toEqual({ replicas: before });
  });

  it('draining brokers and moves survive a snapshot, which a peer\'s parser accepts; malformed ones are refused', () => {
    const m = state();
    const before = replicasOf(m, 0);
    const to = ['b1', 'b2', 'b3', 'b4'].find((id) => !before.includes(id)) as string;
    m.apply({ type: 'move-replica', topic: 'orders', partition: 0, from: before[0] as string, to, atMs: 7 });
    expect(m.apply({ type: 'drain-broker', broker: 'b2', draining: true })).toEqual({ kind: 'draining', brokers: ['b2'] });
    const snapshot = JSON.parse(JSON.stringify(m.snapshot())) as unknown;
    const parsed = parseMetadataSnapshot(snapshot);
    expect(parsed).toBeDefined();
    const restored = new MetadataState(['b1']);
    restored.restore(parsed as NonNullable<typeof parsed>);
    expect(restored.moves.all()).toEqual(m.moves.all());
    expect(restored.moves.draining).toEqual(['b2']);
    expect(restored.get('orders')?.partitions[0]?.learners).toEqual([to]);
    expect(restored.apply({ type: 'finish-move', topic: 'orders', partition: 0, from: before[0] as string, to })).toMatchObject({ kind: 'move-finished' });
    expect(restored.apply({ type: 'drain-broker', broker: 'b2', draining: false })).toEqual({ kind: 'draining', brokers: [] });
    // Snapshots without moves (taken before moves existed) still parse; a malformed move does not.
    expect(parseMetadataSnapshot({ topics: [], durables: [] })).toBeDefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [], moves: [{ topic: 't', partition: -1, from: 'a', to: 'b', startedAtMs: 0 }] })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [{ topic: 't', replicationFactor: 1, partitions: [{ replicas: ['a'], learners: [3] }] }], durables: [] })).toBeUndefined();
  });

  it('a forgotten broker (let back on an empty data directory) is recorded until added again, and survives a snapshot', () => {
    const m = state();
    expect(m.apply({ type: 'forget-broker', broker: 'b4', forgotten: true })).toEqual({ kind: 'forgotten', brokers: ['b4'] });
    expect(m.moves.isForgotten('b4')).toBe(true);
    const parsed = parseMetadataSnapshot(JSON.parse(JSON.stringify(m.snapshot())) as unknown);
    const restored = new MetadataState(['b1']);
    restored.restore(parsed as NonNullable<typeof parsed>);
    expect(restored.moves.forgotten).toEqual(['b4']);
    expect(restored.apply({ type: 'forget-broker', broker: 'b4', forgotten: false, incarnation: 'inc-2' })).toEqual({
      kind: 'forgotten',
      brokers: [],
      admitted: { broker: 'b4', incarnation: 'inc-2' },
    });
    expect(restored.snapshot().forgotten).toBeUndefined();
    // The admitted incarnation survives a snapshot; forgetting the broker again drops it.
    const again = new MetadataState(['b1']);
    again.restore(parseMetadataSnapshot(JSON.parse(JSON.stringify(restored.snapshot())) as unknown) as NonNullable<typeof parsed>);
    expect([...again.moves.admitted]).toEqual([['b4', 'inc-2']]);
    again.apply({ type: 'forget-broker', broker: 'b4', forgotten: true });
    expect([...again.moves.admitted]).toEqual([]);
    expect(parseMetadataSnapshot({ topics: [], durables: [], admitted: { b4: 7 } })).toBeUndefined();
    expect(parseMoveCommand({ type: 'forget-broker', broker: 'b', forgotten: false, incarnation: 'i' })).toEqual({ type: 'forget-broker', broker: 'b', forgotten: false, incarnation: 'i' });
    expect(parseMoveCommand({ type: 'forget-broker', broker: 'b', forgotten: true, incarnation: 'i' })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [], forgotten: [''] })).toBeUndefined();
    expect(parseMoveCommand({ type: 'forget-broker', broker: 'b', forgotten: true })).toEqual({ type: 'forget-broker', broker: 'b', forgotten: true });
    expect(parseMoveCommand({ type: 'forget-broker', broker: 'b' })).toBeUndefined();
  });

  it('parses move commands from the log, refusing malformed ones', () => {
    expect(parseMoveCommand({ type: 'move-replica', topic: 't', partition: 0, from: 'a', to: 'b', atMs: 1 })).toEqual({ type: 'move-replica', topic: 't', partition: 0, from: 'a', to: 'b', atMs: 1 });
    expect(parseMoveCommand({ type: 'finish-move', topic: 't', partition: 2, from: 'a', to: 'b' })).toEqual({ type: 'finish-move', topic: 't', partition: 2, from: 'a', to: 'b' });
    expect(parseMoveCommand({ type: 'cancel-move', topic: 't', partition: 2, to: 'b' })).toEqual({ type: 'cancel-move', topic: 't', partition: 2, to: 'b' });
    expect(parseMoveCommand({ type: 'drain-broker', broker: 'b', draining: true })).toEqual({ type: 'drain-broker', broker: 'b', draining: true });
    expect(parseMoveCommand({ type: 'move-replica', topic: 't', partition: 0, from: 'a', to: 'b' })).toBeUndefined();
    expect(parseMoveCommand({ type: 'drain-broker', broker: '', draining: true })).toBeUndefined();
    expect(parseMoveCommand({ type: 'finish-move', topic: 't', partition: 1.5, from: 'a', to: 'b' })).toBeUndefined();
    expect(parseMoveCommand({ type: 'create-topic', topic: 't', partition: 0 })).toBeUndefined();
  });
});

describe('planDrainMoves', () => {
  const topic = (name: string, assignments: string[][]): MovableTopic => ({ topic: name, partitions: assignments.map((replicas) => ({ replicas })) });

  it('moves each replica off the draining broker to the least loaded member without one, up to the cap, deterministically', () => {
    const topics = [topic('a', [['b1', 'b2', 'b3'], ['b1', 'b3', 'b4'], ['b2', 'b3', 'b4']]), topic('b', [['b1', 'b2', 'b4']])];
    const view = { topics, moves: [], draining: ['b1'], members: ['b1', 'b2', 'b3', 'b4', 'b5'], maxMoves: 2 };
    expect(planDrainMoves(view)).toEqual([
      { topic: 'a', partition: 0, from: 'b1', to: 'b5' },
      { topic: 'a', partition: 1, from: 'b1', to: 'b5' },
    ]);
    // b5 now holds two: the next goes to the least loaded of b2..b5 without a replica of b/0 (b3 holds 3, b5 2).
    expect(planDrainMoves({ ...view, maxMoves: 3 })[2]).toEqual({ topic: 'b', partition: 0, from: 'b1', to: 'b5' });
    expect(planDrainMoves({ ...view, maxMoves: 10 })).toHaveLength(3);
  });

  it('counts moves in progress against the cap and leaves their partitions alone; nothing without room, draining or a target', () => {
    const topics = [topic('a', [['b1', 'b2', 'b3'], ['b1', 'b2', 'b3']])];
    const moves = [{ topic: 'a', partition: 0, from: 'b1', to: 'b4', startedAtMs: 0 }];
    const view = { topics, moves, draining: ['b1'], members: ['b1', 'b2', 'b3', 'b4'], maxMoves: 2 };
    expect(planDrainMoves(view)).toEqual([{ topic: 'a', partition: 1, from: 'b1', to: 'b4' }]);
    expect(planDrainMoves({ ...view, maxMoves: 1 })).toEqual([]);
    expect(planDrainMoves({ ...view, draining: [] })).toEqual([]);
    // No member left without a replica of the partition: nowhere to go.
    expect(planDrainMoves({ ...view, moves: [], members: ['b1', 'b2', 'b3'] })).toEqual([]);
    // A draining broker is never a target.
    expect(planDrainMoves({ ...view, moves: [], draining: ['b1', 'b4'] })).toEqual([]);
  });

  it('replicasOn counts replicas and move targets', () => {
    const topics: MovableTopic[] = [{ topic: 't', partitions: [{ replicas: ['b1', 'b2'] }, { replicas: ['b2', 'b3'], learners: ['b1'] }, { replicas: ['b3'] }] }];
    expect(replicasOn('b1', topics)).toEqual(['t/0', 't/1']);
    expect(replicasOn('b4', topics)).toEqual([]);
  });
});

describe('planRebalanceMoves', () => {
  const topic = (name: string, assignments: string[][]): MovableTopic => ({ topic: name, partitions: assignments.map((replicas) => ({ replicas })) });
  const countsAfter = (topics: MovableTopic[], moves: Array<{ topic: string; partition: number; from: string; to: string }>, members: string[]): number[] => {
    const c = new Map(members.map((id) => [id, 0]));
    for (const t of topics) {
      t.partitions.forEach((a, p) => {
        for (const id of a.replicas) {
          const move = moves.find((m) => m.topic === t.topic && m.partition === p && m.from === id);
          const holder = move?.to ?? id;
          c.set(holder, (c.get(holder) ?? 0) + 1);
        }
      });
    }
    return members.map((id) => c.get(id) ?? 0);
  };

  it('moves replicas from the fullest brokers to the emptiest until counts differ by at most one, never two replicas of a partition on one broker', () => {
    // 6 partitions x 3 replicas on b1..b3 (6 each); b4 and b5 just joined (0 each): 18 over 5 is 4 or 3 each.
    const topics = [topic('t', Array.from({ length: 6 }, () => ['b1', 'b2', 'b3']))];
    const members = ['b1', 'b2', 'b3', 'b4', 'b5'];
    const planned = planRebalanceMoves({ topics, members, maxMoves: 100 });
    const after = countsAfter(topics, planned, members);
    expect(Math.max(...after) - Math.min(...after)).toBeLessThanOrEqual(1);
    expect(after.reduce((a, b) => a + b, 0)).toBe(18);
    // Each partition moves at most once per wave, and never onto a broker holding it.
    expect(new Set(planned.map((m) => m.partition)).size).toBe(planned.length);
    for (const m of planned) expect(topics[0]?.partitions[m.partition]?.replicas.includes(m.to)).toBe(false);
    // Deterministic, and capped.
    expect(planRebalanceMoves({ topics, members, maxMoves: 100 })).toEqual(planned);
    expect(planRebalanceMoves({ topics, members, maxMoves: 2 })).toEqual(planned.slice(0, 2));
  });

  it('plans nothing when counts already differ by at most one, for a single member, or for a partition already moving', () => {
    expect(planRebalanceMoves({ topics: [topic('t', [['b1', 'b2'], ['b2', 'b3'], ['b3', 'b1']])], members: ['b1', 'b2', 'b3'], maxMoves: 4 })).toEqual([]);
    expect(planRebalanceMoves({ topics: [topic('t', [['b1']])], members: ['b1'], maxMoves: 4 })).toEqual([]);
    const moving: MovableTopic = { topic: 't', partitions: [{ replicas: ['b1', 'b2'], learners: ['b3'] }, { replicas: ['b1', 'b2'] }] };
    expect(planRebalanceMoves({ topics: [moving], members: ['b1', 'b2', 'b3'], maxMoves: 4 })).toEqual([{ topic: 't', partition: 1, from: 'b2', to: 'b3' }]);
  });

  it('a rebalance is asked, survives a snapshot, and is recorded done', () => {
    const m = state();
    expect(m.apply({ type: 'rebalance', on: true })).toEqual({ kind: 'rebalance', on: true });
    expect(m.moves.rebalancing).toBe(true);
    const parsed = parseMetadataSnapshot(JSON.parse(JSON.stringify(m.snapshot())));
    const restored = new MetadataState(['b1']);
    restored.restore(parsed as NonNullable<typeof parsed>);
    expect(restored.moves.rebalancing).toBe(true);
    restored.apply({ type: 'rebalance', on: false });
    expect(restored.snapshot().rebalance).toBeUndefined();
    expect(parseMoveCommand({ type: 'rebalance', on: true })).toEqual({ type: 'rebalance', on: true });
    expect(parseMoveCommand({ type: 'rebalance', on: 'yes' })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [], rebalance: 'yes' })).toBeUndefined();
  });
});

describe('preferred leaders', () => {
  const topic = (name: string, assignments: string[][]): MovableTopic => ({ topic: name, partitions: assignments.map((replicas) => ({ replicas })) });

  it('evens out how often each member is the first replica, choosing among each partition\'s replicas', () => {
    // After a drain: b4 took every preferred slot of b1 and b2 (4 of 6), b3 kept 2, b5 none.
    const topics = [topic('t', [['b4', 'b3', 'b5'], ['b4', 'b5', 'b3'], ['b3', 'b4', 'b5'], ['b4', 'b3', 'b5'], ['b3', 'b5', 'b4'], ['b4', 'b5', 'b3']])];
    const planned = planPreferredLeaders({ topics, members: ['b3', 'b4', 'b5'] });
    const firsts = topics[0]?.partitions.map((a, p) => planned.find((c) => c.partition === p)?.leader ?? a.replicas[0]) ?? [];
    const per = ['b3', 'b4', 'b5'].map((id) => firsts.filter((f) => f === id).length);
    expect(per).toEqual([2, 2, 2]);
    for (const c of planned) expect(topics[0]?.partitions[c.partition]?.replicas).toContain(c.leader);
    expect(planPreferredLeaders({ topics: [topic('t', [['b1', 'b2'], ['b2', 'b1']])], members: ['b1', 'b2'] })).toEqual([]);
  });

  it('prefer-replica puts a replica first and keeps the others in order; refuses one that holds none', () => {
    const m = state();
    const before = replicasOf(m, 0);
    const last = before[2] as string;
    expect(m.apply({ type: 'prefer-replica', topic: 'orders', partition: 0, leader: last })).toEqual({ kind: 'preferred', topic: 'orders', partition: 0, replicas: [last, before[0], before[1]] });
    const outside = ['b1', 'b2', 'b3', 'b4'].find((id) => !before.includes(id)) as string;
    expect(m.apply({ type: 'prefer-replica', topic: 'orders', partition: 0, leader: outside })).toMatchObject({ kind: 'move-refused' });
    expect(parseMoveCommand({ type: 'prefer-replica', topic: 'orders', partition: 0, leader: 'b1' })).toEqual({ type: 'prefer-replica', topic: 'orders', partition: 0, leader: 'b1' });
    expect(parseMoveCommand({ type: 'prefer-replica', topic: 'orders', partition: 0 })).toBeUndefined();
  });
});
