import { describe, expect, it } from 'vitest';
import { applyPublish } from './apply.js';
import { Partition, type AppendOutcome } from './partition.js';
import { ProducerTable } from './producers.js';

interface Request {
  producerId: string;
  seq: number;
  data: Uint8Array;
}

const request = (producerId: string, seq: number, data = [seq]): Request => ({ producerId, seq, data: new Uint8Array(data) });

/** One message through the shared apply step, deduplicated (any ack level but `none`). */
const append = (p: Partition, r: Request, nowMs: number): AppendOutcome =>
  applyPublish(p, { producerId: r.producerId, firstSeq: r.seq, messages: [{ data: r.data }], timestampMs: nowMs, dedupe: true })[0] as AppendOutcome;

/** One message as `ack: none` stores it: never deduplicated. */
const appendUnchecked = (p: Partition, r: Request, nowMs: number): AppendOutcome =>
  applyPublish(p, { producerId: r.producerId, firstSeq: r.seq, messages: [{ data: r.data }], timestampMs: nowMs, dedupe: false })[0] as AppendOutcome;

describe('ProducerTable', () => {
  it.each([
    ['the first seq of a new producer', [], 0, { kind: 'new' }],
    ['the seq after the last recorded', [0, 1], 2, { kind: 'new' }],
    ['a recorded seq', [0, 1], 0, { kind: 'duplicate', offset: 0 }],
    ['a seq skipping ahead', [0], 5, { kind: 'gap', expectedSeq: 1 }],
    ['a new producer starting above 0', [], 3, { kind: 'gap', expectedSeq: 0 }],
  ] as const)('classifies %s', (_, recorded, seq, expected) => {
    const table = new ProducerTable(8);
    recorded.forEach((s, i) => table.record('p', s, i * 10));
    expect(table.check('p', seq)).toEqual(expected);
  });

  it('survives a round trip through its records, window and all', () => {
    const table = new ProducerTable(4);
    for (let seq = 0; seq < 10; seq++) table.record('p', seq, 100 + seq);
    table.record('q', 0, 7);
    const copy = new ProducerTable(4);
    copy.restore(table.toRecords());
    expect(copy.toRecords()).toEqual([
      { producerId: 'p', nextSeq: 10, recent: [106, 107, 108, 109] },
      { producerId: 'q', nextSeq: 1, recent: [7] },
    ]);
    expect(copy.check('p', 7)).toEqual({ kind: 'duplicate', offset: 107 });
    expect(copy.check('p', 5)).toEqual({ kind: 'too-old', expectedSeq: 10 });
    expect(copy.check('p', 10)).toEqual({ kind: 'new' });
    copy.record('p', 10, 110);
    expect(copy.check('p', 10)).toEqual({ kind: 'duplicate', offset: 110 });
  });

  it('answers duplicates inside the window with their offset and too-old beyond it', () => {
    const table = new ProducerTable(4);
    for (let seq = 0; seq < 10; seq++) table.record('p', seq, 100 + seq);
    expect(table.check('p', 9)).toEqual({ kind: 'duplicate', offset: 109 });
    expect(table.check('p', 6)).toEqual({ kind: 'duplicate', offset: 106 });
    expect(table.check('p', 5)).toEqual({ kind: 'too-old', expectedSeq: 10 });
    expect(table.check('p', 10)).toEqual({ kind: 'new' });
  });

  it('refuses to record out of order (a caller bug, not input)', () => {
    const table = new ProducerTable(4);
    expect(() => table.record('p', 1, 0)).toThrow(/expected 0/);
  });
});

describe('Partition', () => {
  it('appends with dense offsets and deduplicates per producer', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 1e9 });
    expect(append(p, request('a', 0), 1000)).toEqual({ kind: 'stored', offset: 0 });
    expect(append(p, request('b', 0), 1000)).toEqual({ kind: 'stored', offset: 1 });
    expect(append(p, request('a', 1), 1000)).toEqual({ kind: 'stored', offset: 2 });
    expect(append(p, request('a', 0), 1000)).toEqual({ kind: 'duplicate', offset: 0 });
    expect(append(p, request('b', 2), 1000)).toEqual({ kind: 'gap', expectedSeq: 1 });
    expect(p.endOffset).toBe(3);
  });

  it('keeps timestamps non-decreasing even if the clock steps back', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 1e9 });
    append(p, request('a', 0), 2000);
    append(p, request('a', 1), 1500);
    expect(p.read(0, 10, 1e9).map((m) => m.timestamp)).toEqual([2000, 2000]);
  });

  it('reads by count and by bytes, always at least one message', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 1e9 });
    for (let seq = 0; seq < 5; seq++) append(p, request('a', seq, new Array(100).fill(seq)), 0);
    expect(p.read(1, 2, 1e9).map((m) => m.offset)).toEqual([1, 2]);
    expect(p.read(0, 10, 250).map((m) => m.offset)).toEqual([0, 1]);
    expect(p.read(0, 10, 10).map((m) => m.offset)).toEqual([0]);
    expect(p.read(5, 10, 1e9)).toEqual([]);
  });

  it('finds the first offset at or after a time', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 1e9 });
    [100, 200, 200, 300].forEach((t, seq) => append(p, request('a', seq), t));
    expect([0, 100, 150, 200, 250, 300, 301].map((t) => p.offsetForTime(t))).toEqual([0, 0, 1, 1, 3, 3, 4]);
  });

  it('appends fire-and-forget messages without touching the producer table', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 1e9 });
    appendUnchecked(p, request('a', 0), 0);
    appendUnchecked(p, request('a', 0), 0);
    expect(p.endOffset).toBe(2);
    expect(append(p, request('a', 0), 0)).toEqual({ kind: 'stored', offset: 2 });
  });

  it('keeps the newest retentionBytes, reads from the start when asked for what is gone', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 250 });
    for (let seq = 0; seq < 5; seq++) append(p, request('a', seq, new Array(100).fill(seq)), seq * 10);
    expect([p.startOffset, p.endOffset, p.dataBytes]).toEqual([3, 5, 200]);
    expect(p.read(0, 10, 1e9).map((m) => m.offset)).toEqual([3, 4]);
    expect(p.offsetForTime(0)).toBe(3);
    expect(p.offsetForTime(35)).toBe(4);
    // Deduplication outlives retention: the table still knows seq 0.
    expect(append(p, request('a', 0), 0)).toEqual({ kind: 'duplicate', offset: 0 });
  });

  it('always keeps the newest message, however large', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 10 });
    append(p, request('a', 0, new Array(50).fill(1)), 0);
    append(p, request('a', 1, new Array(60).fill(2)), 0);
    expect([p.startOffset, p.endOffset]).toEqual([1, 2]);
  });

  it('releases the removed prefix over a long run (bounded memory)', () => {
    const p = new Partition({ dedupeWindow: 16, retentionBytes: 100 });
    for (let seq = 0; seq < 20_000; seq++) appendUnchecked(p, request('a', seq, [1, 2, 3, 4]), 0);
    expect(p.endOffset - p.startOffset).toBe(25);
    expect(p.read(19_990, 5, 1e9).map((m) => m.offset)).toEqual([19_990, 19_991, 19_992, 19_993, 19_994]);
  });
});
