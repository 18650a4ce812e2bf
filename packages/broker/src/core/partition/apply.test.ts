import { describe, expect, it } from 'vitest';
import { applyPublish } from './apply.js';
import type { PublishCommand } from './command.js';
import { Partition } from './partition.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A batch of `count` messages `<producerId>:<seq>` from `firstSeq`. */
const command = (producerId: string, firstSeq: number, count: number, dedupe = true): PublishCommand => ({
  producerId,
  firstSeq,
  timestampMs: 1000,
  dedupe,
  messages: Array.from({ length: count }, (_, i) => ({ data: text(`${producerId}:${firstSeq + i}`) })),
});

const partition = (dedupeWindow = 64): Partition => new Partition({ dedupeWindow, retentionBytes: 1e9 });
const stored = (p: Partition): string[] => p.read(0, 1000, 1e9).map((m) => new TextDecoder().decode(m.data));

describe('applyPublish', () => {
  it('stores a batch at consecutive offsets and answers a republish of it with the same offsets, storing nothing', () => {
    const p = partition();
    expect(applyPublish(p, command('a', 0, 3))).toEqual([0, 1, 2].map((offset) => ({ kind: 'stored', offset })));
    expect(applyPublish(p, command('a', 0, 3))).toEqual([0, 1, 2].map((offset) => ({ kind: 'duplicate', offset })));
    expect(stored(p)).toEqual(['a:0', 'a:1', 'a:2']);
  });

  it('stores only the new tail of a batch that overlaps what is stored (a resend after a lost ack)', () => {
    const p = partition();
    applyPublish(p, command('a', 0, 2));
    expect(applyPublish(p, command('a', 1, 3))).toEqual([
      { kind: 'duplicate', offset: 1 },
      { kind: 'stored', offset: 2 },
      { kind: 'stored', offset: 3 },
    ]);
    expect(stored(p)).toEqual(['a:0', 'a:1', 'a:2', 'a:3']);
    expect(p.producers.check('a', 4)).toEqual({ kind: 'new' });
  });

  it('refuses a batch that skips ahead as a gap, every message of it, and stores nothing', () => {
    const p = partition();
    applyPublish(p, command('a', 0, 2));
    expect(applyPublish(p, command('a', 5, 3))).toEqual(new Array(3).fill({ kind: 'gap', expectedSeq: 2 }));
    expect(applyPublish(p, command('new-producer', 1, 1))).toEqual([{ kind: 'gap', expectedSeq: 0 }]);
    expect(p.endOffset).toBe(2);
    // The gap left no trace: the expected seq is still new.
    expect(applyPublish(p, command('a', 2, 1))).toEqual([{ kind: 'stored', offset: 2 }]);
  });

  it('answers seqs older than the deduplication window too-old, with the seq it expects next', () => {
    const p = partition(4);
    applyPublish(p, command('a', 0, 10));
    expect(applyPublish(p, command('a', 5, 2))).toEqual([
      { kind: 'too-old', expectedSeq: 10 },
      { kind: 'duplicate', offset: 6 },
    ]);
  });

  it('keeps each producer of one flush apart: interleaved batches, duplicates and gaps of one never move another', () => {
    const p = partition();
    const flush = [command('a', 0, 2), command('b', 0, 1), command('a#1', 0, 2), command('b', 1, 2), command('a', 1, 2), command('b', 9, 1), command('a#1', 2, 1)];
    const outcomes = flush.map((c) => applyPublish(p, c));
    expect(outcomes).toEqual([
      [{ kind: 'stored', offset: 0 }, { kind: 'stored', offset: 1 }],
      [{ kind: 'stored', offset: 2 }],
      [{ kind: 'stored', offset: 3 }, { kind: 'stored', offset: 4 }],
      [{ kind: 'stored', offset: 5 }, { kind: 'stored', offset: 6 }],
      [{ kind: 'duplicate', offset: 1 }, { kind: 'stored', offset: 7 }],
      [{ kind: 'gap', expectedSeq: 3 }],
      [{ kind: 'stored', offset: 8 }],
    ]);
    expect(stored(p)).toEqual(['a:0', 'a:1', 'b:0', 'a#1:0', 'a#1:1', 'b:1', 'b:2', 'a:2', 'a#1:2']);
  });

  it('stores fire-and-forget batches (no dedupe) whatever their seqs, without touching the producer table', () => {
    const p = partition();
    expect(applyPublish(p, command('a', 7, 2, false))).toEqual([
      { kind: 'stored', offset: 0 },
      { kind: 'stored', offset: 1 },
    ]);
    applyPublish(p, command('a', 7, 1, false));
    expect(p.endOffset).toBe(3);
    expect(p.producers.check('a', 0)).toEqual({ kind: 'new' });
  });

  it('gives every replica the same outcomes and log from the same commands', () => {
    const commands = [command('a', 0, 3), command('b', 0, 2), command('a', 2, 3), command('b', 4, 1), command('a', 0, 1, false)];
    const replicas = [partition(), partition()];
    const outcomes = replicas.map((r) => commands.map((c) => applyPublish(r, c)));
    expect(outcomes[1]).toEqual(outcomes[0]);
    expect(stored(replicas[1] as Partition)).toEqual(stored(replicas[0] as Partition));
  });
});
