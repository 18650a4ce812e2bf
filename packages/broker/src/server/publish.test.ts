import { describe, expect, it } from 'vitest';
import type { PublishBatch } from '@relaymq/sdk/protocol';
import { ackRanges } from './publish.js';

const batch = (count: number): PublishBatch => ({
  topic: 't',
  partition: 0,
  ack: 'quorum',
  firstId: 100,
  firstSeq: 10,
  messages: Array.from({ length: count }, () => ({ data: new Uint8Array() })),
});

describe('ackRanges', () => {
  it('collapses consecutive stored messages into one range, and starts a new one where duplicates begin', () => {
    const answers = ackRanges(batch(4), [
      { kind: 'stored', offset: 5 },
      { kind: 'stored', offset: 6 },
      { kind: 'duplicate', offset: 7 },
      { kind: 'duplicate', offset: 8 },
    ]);
    expect(answers).toEqual([
      { id: 100, offset: 5, count: 2, duplicate: false },
      { id: 102, offset: 7, count: 2, duplicate: true },
    ]);
  });

  it('nacks a gap (with the expected seq) and a seq too old, in message order between the acks', () => {
    const answers = ackRanges(batch(4), [
      { kind: 'stored', offset: 0 },
      { kind: 'gap', expectedSeq: 11 },
      { kind: 'too-old', expectedSeq: 20 },
      { kind: 'stored', offset: 1 },
    ]);
    expect(answers).toEqual([
      { id: 100, offset: 0, count: 1, duplicate: false },
      { type: 'nack', id: 101, code: 'SEQUENCE_GAP', message: 'seq 11 skips ahead; expected 11', expectedSeq: 11 },
      { type: 'nack', id: 102, code: 'SEQUENCE_TOO_OLD', message: 'seq 12 is older than the deduplication window (next is 20)' },
      { id: 103, offset: 1, count: 1, duplicate: false },
    ]);
  });
});
