import { describe, expect, it } from 'vitest';
import { MAX_TOPICS_PER_ENTRY } from '../core/metadata/metadata.js';
import { parseMetadataCommand, parsePartitionLeaders, parsePartitionLeadersResponse, parseTopics } from './peer-messages.js';

describe('topic creation from peers', () => {
  it('reads a create-topics entry, and refuses one that is empty, too long or holds a malformed topic', () => {
    const topic = (name: string): { topic: string; partitions: number; replicationFactor: number } => ({ topic: name, partitions: 8, replicationFactor: 3 });
    expect(parseMetadataCommand({ type: 'create-topics', topics: [topic('a'), topic('b')] })).toEqual({ type: 'create-topics', topics: [topic('a'), topic('b')] });
    expect(parseMetadataCommand({ type: 'create-topics', topics: [] })).toBeUndefined();
    expect(parseMetadataCommand({ type: 'create-topics', topics: Array.from({ length: MAX_TOPICS_PER_ENTRY + 1 }, (_, i) => topic(`t${i}`)) })).toBeUndefined();
    expect(parseMetadataCommand({ type: 'create-topics', topics: [topic('a'), { ...topic('b'), partitions: 0 }] })).toBeUndefined();
    expect(parseMetadataCommand({ type: 'create-topics', topics: [topic('a'), 'b'] })).toBeUndefined();
    // The brokers the proposer placed the entry on travel with it, and are checked.
    expect(parseMetadataCommand({ type: 'create-topics', topics: [topic('a')], brokers: ['b1', 'b4'] })).toEqual({ type: 'create-topics', topics: [topic('a')], brokers: ['b1', 'b4'] });
    expect(parseMetadataCommand({ type: 'create-topics', topics: [topic('a')], brokers: ['b1', ''] })).toBeUndefined();
    expect(parseMetadataCommand({ type: 'create-topics', topics: [topic('a')], brokers: 'b1' })).toBeUndefined();
    expect(parseMetadataCommand({ type: 'create-topic', ...topic('a'), brokers: ['b2'] })).toEqual({ type: 'create-topic', ...topic('a'), brokers: ['b2'] });
    expect(parseMetadataCommand({ type: 'create-topic', ...topic('a'), brokers: [7] })).toBeUndefined();
    // The single-topic entry reads as before.
    expect(parseMetadataCommand({ type: 'create-topic', ...topic('a') })).toEqual({ type: 'create-topic', ...topic('a') });
    expect(parseMetadataCommand({ type: 'create-topic', ...topic('a'), partitions: 1025 })).toBeUndefined();
  });

  it('reads the topic names of meta.create-topics, within bounds', () => {
    expect(parseTopics(['a', 'b'])).toEqual(['a', 'b']);
    expect(() => parseTopics([])).toThrow('meta.create-topics wants 1 to');
    expect(() => parseTopics('a')).toThrow('meta.create-topics wants 1 to');
    expect(() => parseTopics(['a', ''])).toThrow('meta.create wants a topic name');
    expect(() => parseTopics(Array.from({ length: MAX_TOPICS_PER_ENTRY + 1 }, (_, i) => `t${i}`))).toThrow('meta.create-topics wants 1 to');
  });
});

describe('partition leader lookups between brokers', () => {
  it('reads a lookup and its answer, and refuses malformed ones', () => {
    const asked = [
      { topic: 't', partitions: [0, 3] },
      { topic: 'u', partitions: [1] },
    ];
    expect(parsePartitionLeaders({ topics: asked })).toEqual(asked);
    for (const bad of [{}, { topics: 't' }, { topics: [{ topic: 't' }] }, { topics: [{ topic: 7, partitions: [0] }] }, { topics: [{ topic: 't', partitions: [-1] }] }, { topics: [{ topic: 't', partitions: [0.5] }] }, null]) {
      expect(() => parsePartitionLeaders(bad)).toThrow('malformed partition leaders lookup');
    }
    // Bounded over all its topics.
    const many = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
    expect(parsePartitionLeaders({ topics: [{ topic: 't', partitions: many(500_000) }, { topic: 'u', partitions: many(500_000) }] })).toHaveLength(2);
    expect(() => parsePartitionLeaders({ topics: [{ topic: 't', partitions: many(500_000) }, { topic: 'u', partitions: many(500_001) }] })).toThrow('malformed');
    expect(parsePartitionLeadersResponse({ leaders: [['b1', ''], ['b2']] }, asked)).toEqual([['b1', ''], ['b2']]);
    // One name per partition asked, each a string: anything else is not taken.
    for (const bad of [{ leaders: [['b1'], ['b2']] }, { leaders: [['b1', 2], ['b2']] }, { leaders: [['b1', '']] }, { leaders: 'b1' }, {}, undefined]) {
      expect(() => parsePartitionLeadersResponse(bad, asked)).toThrow('malformed partition leaders answer');
    }
  });
});
