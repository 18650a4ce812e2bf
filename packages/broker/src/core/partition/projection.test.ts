import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyPublish } from './apply.js';
import type { PublishCommand } from './command.js';
import { Partition } from './partition.js';
import { PartitionProjection } from './projection.js';

const command = (producerId: string, firstSeq: number, count: number, dedupe = true): PublishCommand => ({
  producerId,
  firstSeq,
  timestampMs: 1000,
  dedupe,
  messages: Array.from({ length: count }, () => ({ data: new Uint8Array([1]) })),
});

describe('PartitionProjection', () => {
  it('answers an uncommitted batch as applying it will: offsets past the pending tail, duplicates of pending seqs, gaps', () => {
    const base = new Partition({ dedupeWindow: 64, retentionBytes: 1e9 });
    applyPublish(base, command('a', 0, 2)); // committed: offsets 0-1
    const projection = new PartitionProjection(base, 64);
    expect(projection.project(command('a', 2, 2), 10)).toEqual([
      { kind: 'stored', offset: 2 },
      { kind: 'stored', offset: 3 },
    ]);
    expect(projection.project(command('b', 0, 1), 11)).toEqual([{ kind: 'stored', offset: 4 }]);
    // A resend of committed and pending seqs, then new ones; a gap past the pending tail.
    expect(projection.project(command('a', 1, 4), 12)).toEqual([
      { kind: 'duplicate', offset: 1 },
      { kind: 'duplicate', offset: 2 },
      { kind: 'duplicate', offset: 3 },
      { kind: 'stored', offset: 5 },
    ]);
    expect(projection.project(command('b', 3, 1), 13)).toEqual([{ kind: 'gap', expectedSeq: 1 }]);
    expect(projection.project(command('b', 0, 1, false), 14)).toEqual([{ kind: 'stored', offset: 6 }]);
    expect(projection.pending).toBe(4);

    // The base commits the same entries: the same outcomes, and the projection drops what it applied.
    applyPublish(base, command('a', 2, 2));
    projection.applied(10);
    applyPublish(base, command('b', 0, 1));
    projection.applied(11);
    expect(projection.pending).toBe(2);
    expect(projection.project(command('a', 5, 1), 15)).toEqual([{ kind: 'stored', offset: 7 }]);
    expect(projection.project(command('b', 1, 1), 16)).toEqual([{ kind: 'stored', offset: 8 }]);
  });

  it('starts over on the base after a reset (a new term re-projects its log)', () => {
    const base = new Partition({ dedupeWindow: 64, retentionBytes: 1e9 });
    const projection = new PartitionProjection(base, 64);
    projection.project(command('a', 0, 3), 1);
    projection.reset();
    expect(projection.pending).toBe(0);
    expect(projection.project(command('a', 0, 1), 1)).toEqual([{ kind: 'stored', offset: 0 }]);
  });

  it('property: projected outcomes always equal the outcomes of applying the entry, whenever the base catches up', () => {
    const step = fc.record({
      producer: fc.constantFrom('a', 'b', 'c'),
      seqDelta: fc.integer({ min: -6, max: 2 }),
      count: fc.integer({ min: 1, max: 4 }),
      dedupe: fc.integer({ min: 0, max: 4 }).map((n) => n > 0), // mostly deduplicated, sometimes `ack: none`
      applyUpTo: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), fc.integer({ min: 2, max: 10 }), (steps, window) => {
        const base = new Partition({ dedupeWindow: window, retentionBytes: 1e9 });
        const projection = new PartitionProjection(base, window);
        const next = new Map<string, number>();
        const log: Array<{ index: number; command: PublishCommand; projected: unknown }> = [];
        let applied = 0;
        const applyNext = (): void => {
          const entry = log[applied] as (typeof log)[number];
          expect(applyPublish(base, entry.command)).toEqual(entry.projected);
          applied++;
          projection.applied(entry.index);
        };
        steps.forEach((s, i) => {
          const firstSeq = Math.max(0, (next.get(s.producer) ?? 0) + s.seqDelta);
          const c = command(s.producer, firstSeq, s.count, s.dedupe);
          const projected = projection.project(c, i + 1);
          log.push({ index: i + 1, command: c, projected });
          if (s.dedupe) {
            const stored = projected.filter((o) => o.kind === 'stored').length;
            if (stored > 0) next.set(s.producer, firstSeq + s.count);
          }
          for (let k = 0; k < s.applyUpTo && applied < log.length; k++) applyNext();
        });
        while (applied < log.length) applyNext();
        expect(projection.pending).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
