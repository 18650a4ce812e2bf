import { describe, expect, it } from 'vitest';
import { MetadataState } from './metadata.js';

describe('add-partitions', () => {
  it('appends partitions placed like a new topic\'s, keeps the existing ones, and never lowers the count', () => {
    const state = new MetadataState(['b1', 'b2', 'b3']);
    state.apply({ type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 2, brokers: ['b1', 'b2', 'b3'] });
    const before = structuredClone(state.get('orders')?.partitions);
    const grown = state.apply({ type: 'add-partitions', topic: 'orders', partitions: 5, brokers: ['b1', 'b2', 'b3', 'b4'] });
    expect(grown.kind).toBe('grown');
    const after = state.get('orders')?.partitions ?? [];
    expect(after).toHaveLength(5);
    expect(after.slice(0, 2)).toEqual(before);
    for (const p of after.slice(2)) {
      expect(p.replicas).toHaveLength(2); // the topic's replication factor
      expect(new Set(p.replicas).size).toBe(2);
    }
    // Placed by load: the brokers that led nothing (b3, and b4, new to the cluster) get the new preferred leaderships first.
    expect(after.slice(2, 4).map((p) => p.replicas[0])).toEqual(['b3', 'b4']);

    expect(state.apply({ type: 'add-partitions', topic: 'orders', partitions: 3, brokers: ['b1'] }).kind).toBe('unchanged');
    expect(state.apply({ type: 'add-partitions', topic: 'orders', partitions: 5, brokers: ['b1'] }).kind).toBe('unchanged');
    expect(state.get('orders')?.partitions).toHaveLength(5);
    expect(state.apply({ type: 'add-partitions', topic: 'nope', partitions: 5, brokers: ['b1'] })).toEqual({ kind: 'missing', topic: 'nope' });
  });

  it('is deterministic: two brokers applying the same commands hold the same assignment', () => {
    const a = new MetadataState(['b1', 'b2', 'b3']);
    const b = new MetadataState(['b1', 'b2', 'b3']);
    for (const s of [a, b]) {
      s.apply({ type: 'create-topic', topic: 't', partitions: 3, replicationFactor: 3 });
      s.apply({ type: 'add-partitions', topic: 't', partitions: 8, brokers: ['b1', 'b2', 'b3'] });
    }
    expect(a.snapshot()).toEqual(b.snapshot());
  });

  it('gives consumer groups of the topic the new partitions', () => {
    const state = new MetadataState(['b1']);
    state.apply({ type: 'create-topic', topic: 'jobs', partitions: 1, replicationFactor: 1 });
    state.apply({ type: 'group-join', group: 'workers', pattern: 'jobs', member: 'm1', sessionTimeoutMs: 10_000 });
    expect(state.groups.toRecords().find((g) => g.group === 'workers')?.partitions).toHaveLength(1);
    state.apply({ type: 'add-partitions', topic: 'jobs', partitions: 3, brokers: ['b1'] });
    const owned = state.groups.toRecords().find((g) => g.group === 'workers');
    expect(owned?.partitions.map((p) => p.partition).sort()).toEqual([0, 1, 2]);
  });
});
