import { describe, expect, it } from 'vitest';
import { MetadataState, assignReplicas, parseMetadataSnapshot } from './metadata.js';

describe('assignReplicas', () => {
  it('spreads preferred leaders and replicas evenly over the brokers', () => {
    const assignment = assignReplicas(['b1', 'b2', 'b3'], new Map(), 6, 3);
    expect(assignment.map((p) => p.replicas)).toEqual([
      ['b1', 'b2', 'b3'],
      ['b2', 'b1', 'b3'],
      ['b3', 'b1', 'b2'],
      ['b1', 'b2', 'b3'],
      ['b2', 'b1', 'b3'],
      ['b3', 'b1', 'b2'],
    ]);
    const leaders = assignment.map((p) => p.replicas[0]);
    for (const id of ['b1', 'b2', 'b3']) expect(leaders.filter((l) => l === id)).toHaveLength(2);
  });

  it('never places two replicas of a partition on one broker', () => {
    for (let brokers = 1; brokers <= 7; brokers++) {
      const ids = Array.from({ length: brokers }, (_, i) => `b${i}`);
      for (let rf = 1; rf <= brokers; rf++) {
        for (const partition of assignReplicas(ids, new Map(), 10, rf)) {
          expect(new Set(partition.replicas).size).toBe(rf);
        }
      }
    }
  });
});

describe('MetadataState', () => {
  it('creates a topic once, capping the replication factor by the cluster size', () => {
    const state = new MetadataState(['b1', 'b2']);
    const created = state.apply({ type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 3 });
    expect(created).toMatchObject({ kind: 'created', topic: { topic: 'orders', replicationFactor: 2 } });
    expect(state.apply({ type: 'create-topic', topic: 'orders', partitions: 9, replicationFactor: 1 })).toEqual({
      kind: 'exists',
      topic: created.topic,
    });
    expect(state.get('orders')?.partitions).toHaveLength(2);
  });

  it('balances leaders across topics, not just within one', () => {
    const state = new MetadataState(['b1', 'b2', 'b3']);
    const leaders = ['a', 'b', 'c'].map(
      (topic) => state.apply({ type: 'create-topic', topic, partitions: 1, replicationFactor: 3 }).topic.partitions[0]?.replicas[0],
    );
    expect(new Set(leaders)).toEqual(new Set(['b1', 'b2', 'b3']));
  });

  it('is deterministic: the same commands give the same state on every broker', () => {
    const commands = ['x', 'y', 'z'].map((topic, i) => ({ type: 'create-topic' as const, topic, partitions: i + 1, replicationFactor: 2 }));
    const a = new MetadataState(['b3', 'b1', 'b2']);
    const b = new MetadataState(['b1', 'b2', 'b3']);
    for (const command of commands) {
      a.apply(command);
      b.apply(command);
    }
    expect(a.all()).toEqual(b.all());
  });

  it('applies commit-positions with max(): positions never go back, and topics are untouched', () => {
    const state = new MetadataState(['b1', 'b2', 'b3']);
    const commit = (offset: number): ReturnType<MetadataState['apply']> =>
      state.apply({ type: 'commit-positions', durable: 'billing', positions: [{ topic: 'orders', partition: 0, offset }] });
    expect(commit(10)).toEqual({ kind: 'positions', positions: [{ topic: 'orders', partition: 0, offset: 10 }] });
    expect(commit(4)).toEqual({ kind: 'positions', positions: [{ topic: 'orders', partition: 0, offset: 10 }] });
    expect(commit(11)).toEqual({ kind: 'positions', positions: [{ topic: 'orders', partition: 0, offset: 11 }] });
    expect(state.positions('billing')).toEqual([{ topic: 'orders', partition: 0, offset: 11 }]);
    expect(state.all()).toEqual([]);
  });

  it('replays commits in log order to the same positions on every broker, whatever stale commits the log holds', () => {
    const commands = [7, 3, 9, 9, 2, 15, 1].map((offset, i) => ({
      type: 'commit-positions' as const,
      durable: i % 2 === 0 ? 'billing' : 'audit',
      positions: [{ topic: 'orders', partition: i % 3, offset }],
    }));
    const a = new MetadataState(['b1', 'b2']);
    const b = new MetadataState(['b2', 'b1']);
    for (const command of commands) {
      a.apply(command);
      b.apply(command);
    }
    expect(a.positions('billing')).toEqual(b.positions('billing'));
    expect(a.positions('audit')).toEqual(b.positions('audit'));
    expect(a.positions('billing')).toEqual([
      { topic: 'orders', partition: 0, offset: 7 },
      { topic: 'orders', partition: 2, offset: 9 },
      { topic: 'orders', partition: 1, offset: 2 },
    ]);
  });
});

describe('MetadataState snapshots', () => {
  it('restores topics and durable positions, and goes on exactly as the original', () => {
    const original = new MetadataState(['b1', 'b2', 'b3']);
    original.apply({ type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 3 });
    original.apply({ type: 'commit-positions', durable: 'billing', positions: [{ topic: 'orders', partition: 1, offset: 7 }] });
    const snapshot = original.snapshot();
    original.apply({ type: 'create-topic', topic: 'later', partitions: 1, replicationFactor: 3 }); // the snapshot is a copy
    expect(snapshot.topics.map((t) => t.topic)).toEqual(['orders']);

    const copy = new MetadataState(['b1', 'b2', 'b3']);
    copy.restore(parseMetadataSnapshot(structuredClone(snapshot)) as NonNullable<ReturnType<typeof parseMetadataSnapshot>>);
    expect(copy.get('orders')).toEqual(original.get('orders'));
    expect(copy.positions('billing')).toEqual([{ topic: 'orders', partition: 1, offset: 7 }]);
    // Deterministic from there: the same next command gives the same assignment.
    copy.apply({ type: 'create-topic', topic: 'later', partitions: 1, replicationFactor: 3 });
    expect(copy.get('later')).toEqual(original.get('later'));
  });

  it('refuses a malformed snapshot from a peer', () => {
    expect(parseMetadataSnapshot(null)).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [{ topic: 'x', replicationFactor: 1, partitions: [{ replicas: [1] }] }], durables: [] })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [{ durable: 'd', positions: [{ topic: 't', partition: -1, offset: 0 }] }] })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [] })).toEqual({ topics: [], durables: [] });
  });
});
