import { describe, expect, it } from 'vitest';
import { deriveRandom } from '../core/raft/random.js';
import type { Entry } from '../core/raft/types.js';
import { applyPublish } from '../core/partition/apply.js';
import type { PublishCommand } from '../core/partition/command.js';
import { Partition } from '../core/partition/partition.js';
import { StoredCounts } from './stored-counts.js';

const DEDUPE_WINDOW = 8;

/** A log whose first `applied` entries are applied to `base`, and the counts of its entries as they are appended. */
function harness() {
  const base = new Partition({ dedupeWindow: DEDUPE_WINDOW, retentionBytes: Number.MAX_SAFE_INTEGER });
  const log: Array<Entry<PublishCommand>> = [];
  let applied = 0;
  const projected = { entriesRead: 0 };
  const counts = new StoredCounts(base, DEDUPE_WINDOW, {
    appliedIndex: () => applied,
    entries: (lo, hi) => {
      projected.entriesRead += hi - lo;
      return log.slice(lo - 1, hi - 1);
    },
  });
  const stored: number[] = [];
  return {
    base,
    log,
    stored,
    projected,
    /** Appends at `index`, cutting what follows (as a follower does for a new leader's entries). */
    append(entries: Array<Entry<PublishCommand>>): void {
      const first = entries[0] as Entry<PublishCommand>;
      if (first.index <= log.length) {
        log.length = stored.length = first.index - 1;
        counts.truncated(first.index);
      }
      for (const entry of entries) {
        log.push(entry);
        stored.push(counts.count(entry));
      }
    },
    /** Applies up to `index`, as the state machine does; returns what each applied entry stored. */
    apply(index: number): number[] {
      const out: number[] = [];
      for (; applied < index; ) {
        const entry = log[applied] as Entry<PublishCommand>;
        applied++;
        if (entry.type === 'normal') out.push(applyPublish(base, entry.data).filter((o) => o.kind === 'stored').length);
        else out.push(0);
        counts.appliedUpTo(applied);
      }
      return out;
    },
  };
}

const publish = (index: number, term: number, producerId: string, firstSeq: number, n: number, dedupe = true): Entry<PublishCommand> => ({
  type: 'normal',
  index,
  term,
  data: { producerId, firstSeq, timestampMs: index, dedupe, messages: Array.from({ length: n }, (_, i) => ({ data: Uint8Array.of(firstSeq + i) })) },
});

describe('StoredCounts', () => {
  it('counts only what apply will store: duplicates of an uncommitted entry, a republished overlap, a gap, ack none', () => {
    const h = harness();
    h.append([publish(1, 1, 'p', 0, 3), { type: 'noop', index: 2, term: 1 }, publish(3, 1, 'p', 0, 3), publish(4, 1, 'p', 2, 3), publish(5, 1, 'p', 9, 2), publish(6, 1, 'p', 0, 2, false)]);
    expect(h.stored).toEqual([3, 0, 0, 2, 0, 2]);
    expect(h.apply(6)).toEqual(h.stored);
  });

  it('after a new leader cut the suffix, the entries that replace it are counted over what remains', () => {
    const h = harness();
    h.append([publish(1, 1, 'p', 0, 2), publish(2, 1, 'p', 2, 2), publish(3, 1, 'p', 4, 2)]);
    h.apply(1);
    // The new leader never had entries 2 and 3: its entry 2 repeats seqs 2..3 (fresh there), its entry 3 seqs 2..5.
    h.append([publish(2, 2, 'p', 2, 2), publish(3, 2, 'p', 2, 4)]);
    expect(h.stored).toEqual([2, 2, 2]);
    expect([2, ...h.apply(3)]).toEqual(h.stored);
  });

  it("a restarted leader's first entry (a noop) projects none of the window before it; the next publish only what is not applied yet", () => {
    const h = harness();
    // Read back on open: in the log, never counted here.
    h.log.push(publish(1, 1, 'p', 0, 3), publish(2, 1, 'p', 3, 3), publish(3, 1, 'p', 3, 4));
    h.append([{ type: 'noop', index: 4, term: 2 }]);
    expect(h.projected.entriesRead).toBe(0);
    expect(h.apply(2)).toEqual([3, 3]);
    h.append([publish(5, 2, 'p', 7, 2)]);
    // Entries 3 and 4 (not applied yet) are projected for it, not the window from 1.
    expect(h.projected.entriesRead).toBe(2);
    expect(h.stored).toEqual([0, 2]);
    expect(h.apply(5)).toEqual([1, 0, 2]);
  });

  it('against apply, over random logs with cuts, duplicates, gaps and three producers: every replica would store what was counted', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const stream = deriveRandom(seed, 'stored-counts');
      const random = (n: number): number => stream.nextInt(n);
      const h = harness();
      const next = new Map<string, number>();
      let term = 1;
      let applied = 0;
      for (let step = 0; step < 60; step++) {
        const op = random(10);
        if (op < 6) {
          const producer = `p${random(3)}`;
          const seq = Math.max(0, (next.get(producer) ?? 0) + random(5) - 2); // duplicates, fresh and gaps
          const n = 1 + random(4);
          next.set(producer, Math.max(next.get(producer) ?? 0, seq + n));
          h.append([op === 5 ? { type: 'noop', index: h.log.length + 1, term } : publish(h.log.length + 1, term, producer, seq, n, random(8) !== 0)]);
        } else if (op < 8 && h.log.length > applied) {
          term++;
          const from = applied + 1 + random(h.log.length - applied);
          const producer = `p${random(3)}`;
          h.append([publish(from, term, producer, Math.max(0, (next.get(producer) ?? 0) - random(6)), 1 + random(3))]);
        } else if (h.log.length > applied) {
          applied += 1 + random(h.log.length - applied);
          h.apply(applied);
        }
      }
      const counted = [...h.stored];
      // A replica applying the final log from scratch stores exactly the counts.
      const fresh = harness();
      fresh.append(h.log.map((e) => e));
      expect(fresh.apply(h.log.length), `seed ${seed}`).toEqual(counted);
    }
  });
});
