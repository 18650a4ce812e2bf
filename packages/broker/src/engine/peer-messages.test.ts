import { describe, expect, it } from 'vitest';
import { MAX_TOPICS_PER_ENTRY } from '../core/metadata/metadata.js';
import { parseMetadataCommand, parseTopics } from './peer-messages.js';

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
