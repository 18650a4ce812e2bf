import { describe, expect, it } from 'vitest';
import { MAX_STREAM_NAME_BYTES, metaStreamName, newGeneration, partitionStreamName, publisherRef } from './naming.js';

describe('backbone naming', () => {
  it('names partition streams prefix:topic:generation:partition, dots in the topic kept', () => {
    expect(partitionStreamName('relaymq', 'orders.eu.paid', 'k3x9q2ab', 0)).toBe('relaymq:orders.eu.paid:k3x9q2ab:0');
    expect(metaStreamName('relaymq')).toBe('relaymq:__meta');
  });

  it('keeps topics that differ only in where their dots and digits fall apart', () => {
    // With "." as the separator these two would both be "relaymq.a.1.g.0".
    const names = new Set([
      partitionStreamName('relaymq', 'a.1', 'g', 0),
      partitionStreamName('relaymq', 'a', 'g', 10),
      partitionStreamName('relaymq', 'a', '1.g', 0),
      partitionStreamName('relaymq', 'a.1.g', 'g', 0),
    ]);
    expect(names.size).toBe(4);
    for (const name of names) expect(name.split(':')).toHaveLength(4);
  });

  it('never clashes with the metadata stream (":" cannot occur in a topic)', () => {
    expect(partitionStreamName('relaymq', '__meta', 'g', 0)).not.toBe(metaStreamName('relaymq'));
  });

  it('shortens names beyond 255 bytes with a hash, keeping distinct topics distinct', () => {
    const long = `${'x'.repeat(250)}.a`;
    const other = `${'x'.repeat(250)}.b`;
    const a = partitionStreamName('relaymq', long, 'abcdefgh', 12);
    const b = partitionStreamName('relaymq', other, 'abcdefgh', 12);
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(MAX_STREAM_NAME_BYTES);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^relaymq:x{160}~[0-9a-f]{16}:abcdefgh:12$/);
  });

  it('gives each producer its own publisher reference, hashed when long', () => {
    expect(publisherRef('alice/p-1')).toBe('p:alice/p-1');
    const long = publisherRef('p'.repeat(300));
    expect(long).toMatch(/^h:[0-9a-f]{64}$/);
    expect(publisherRef('q'.repeat(300))).not.toBe(long);
  });

  it('draws generations of 8 base-36 characters', () => {
    expect(newGeneration(() => 0.5)).toMatch(/^[0-9a-z]{8}$/);
    expect(newGeneration()).not.toBe(newGeneration());
  });
});
