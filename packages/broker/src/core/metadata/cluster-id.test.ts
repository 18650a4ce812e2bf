import { describe, expect, it } from 'vitest';
import { MetadataState, parseMetadataSnapshot } from './metadata.js';

describe('the cluster id in the metadata', () => {
  it('is set by the first set-cluster-id applied; later ones change nothing', () => {
    const state = new MetadataState(['b1', 'b2', 'b3']);
    expect(state.clusterId).toBeUndefined();
    expect(state.apply({ type: 'set-cluster-id', clusterId: 'first' })).toEqual({ kind: 'cluster-id', clusterId: 'first' });
    expect(state.apply({ type: 'set-cluster-id', clusterId: 'second' })).toEqual({ kind: 'cluster-id', clusterId: 'first' });
    expect(state.clusterId).toBe('first');
  });

  it('travels in snapshots; a snapshot from before cluster ids has none', () => {
    const named = new MetadataState(['b1']);
    named.apply({ type: 'set-cluster-id', clusterId: 'c-1' });
    named.apply({ type: 'create-topic', topic: 't', partitions: 2, replicationFactor: 1 });
    const snapshot = named.snapshot();
    expect(snapshot.clusterId).toBe('c-1');
    const restored = new MetadataState(['b1']);
    restored.restore(parseMetadataSnapshot(JSON.parse(JSON.stringify(snapshot))) ?? { topics: [], durables: [] });
    expect(restored.clusterId).toBe('c-1');
    expect(restored.get('t')?.partitions).toHaveLength(2);

    restored.restore({ topics: [], durables: [] });
    expect(restored.clusterId).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [], clusterId: 'bad id!' })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [], clusterId: 42 })).toBeUndefined();
  });
});
