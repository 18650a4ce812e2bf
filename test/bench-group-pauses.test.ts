import { describe, expect, it } from 'vitest';
import { longestGap, longestWait, settled, type Trace } from '../bench/group-pauses.js';

/** The consumer-group benchmark's measurements (bench/group-pauses.ts): a wrong one would report a wrong figure. */

const trace = (parts: Partial<Trace>): Trace => ({ handled: [], ownership: [], messages: new Map(), ...parts });

describe('bench group pauses', () => {
  it('settled: every partition has exactly one owner and the shares differ by at most one', () => {
    const owning = (...sets: number[][]): Array<{ owned: Set<number> }> => sets.map((s) => ({ owned: new Set(s) }));
    expect(settled(owning([0, 1], [2, 3], [4, 5]), 6)).toBe(true);
    expect(settled(owning([0, 1, 2], [3, 4]), 5)).toBe(true);
    expect(settled(owning([0, 1, 2, 3], [4, 5]), 6)).toBe(false); // uneven
    expect(settled(owning([0, 1, 2], [2, 3, 4]), 6)).toBe(false); // 2 owned twice, 5 by nobody
    expect(settled(owning([0, 1], [2]), 4)).toBe(false); // 3 unowned
  });

  it('longestGap: between consecutive calls of one member, from the last call before the window to its end', () => {
    const t = trace({
      handled: [
        { member: 'a', partition: 0, t: 90 },
        { member: 'a', partition: 0, t: 120 },
        { member: 'b', partition: 0, t: 200 }, // another member: not a's
        { member: 'a', partition: 1, t: 250 }, // another partition
        { member: 'a', partition: 0, t: 400 },
        { member: 'a', partition: 0, t: 450 },
      ],
    });
    expect(longestGap(t, 'a', 0, 100, 500)).toBe(280); // 120 → 400
    expect(longestGap(t, undefined, 0, 100, 500)).toBe(200); // 200 → 400, any member
    expect(longestGap(t, 'a', 0, 100, 1000)).toBe(550); // 450 → the window's end
    expect(longestGap(t, 'a', 2, 100, 300)).toBe(200); // nothing at all: the whole window
  });

  it('longestWait: acknowledgement to first handler call, for messages acknowledged in the window; an unhandled one waits forever', () => {
    const messages: Trace['messages'] = new Map([
      [1, { partition: 0, ackedAt: 100, handledAt: 130 }],
      [2, { partition: 0, ackedAt: 150, handledAt: 140 }], // handled before its ack arrived: no wait
      [3, { partition: 0, ackedAt: 200, handledAt: 450 }],
      [4, { partition: 0, ackedAt: 50, handledAt: 900 }], // acknowledged before the window
      [5, { partition: 1, ackedAt: 120, handledAt: 800 }], // another partition
      [6, { partition: 0 }], // never acknowledged: not counted
    ]);
    expect(longestWait(trace({ messages }), 0, 100, 300)).toBe(250);
    expect(longestWait(trace({ messages }), 1, 100, 300)).toBe(680);
    messages.set(7, { partition: 0, ackedAt: 250 });
    expect(longestWait(trace({ messages }), 0, 100, 300)).toBe(Number.POSITIVE_INFINITY);
  });
});
