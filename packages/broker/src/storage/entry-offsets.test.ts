import { describe, expect, it } from 'vitest';
import { EntryOffsets } from './entry-offsets.js';

describe('EntryOffsets', () => {
  it('assigns dense offsets in log order; entries storing nothing (no-ops, conf changes) take an index but no offset', () => {
    const offsets = new EntryOffsets();
    expect(offsets.append(1, [0, 3, 0, 2])).toEqual([0, 0, 3, 3]);
    expect([1, 2, 3, 4].map((i) => offsets.endAt(i))).toEqual([0, 3, 3, 5]);
    expect(offsets.at(2)).toEqual({ firstOffset: 0, count: 3 });
    expect([0, 1, 2, 3, 4].map((o) => offsets.indexOf(o))).toEqual([2, 2, 2, 4, 4]);
    expect(offsets.indexOf(5)).toBeUndefined();
    // Only up to a given index (the commit): entry 4 is not visible yet.
    expect(offsets.indexOf(3, 3)).toBeUndefined();
  });

  it('a conflicting suffix replaced by a new leader gives its offsets to the new entries', () => {
    const offsets = new EntryOffsets();
    offsets.append(1, [2, 2, 2]);
    expect(offsets.append(2, [0, 1])).toEqual([2, 2]);
    expect(offsets.lastIndex).toBe(3);
    expect(offsets.endAt(3)).toBe(3);
    expect(() => offsets.append(5, [1])).toThrow(RangeError); // a gap
  });

  it('compaction and a snapshot keep the offsets after it: the window starts at the snapshot\'s end', () => {
    const offsets = new EntryOffsets();
    offsets.append(1, [2, 0, 4, 1]);
    offsets.compact(3);
    expect(offsets.base).toBe(3);
    expect(offsets.baseEndOffset).toBe(6);
    expect(offsets.indexOf(5)).toBeUndefined(); // below the window
    expect(offsets.indexOf(6)).toBe(4);
    expect(() => offsets.append(3, [1])).toThrow(RangeError);
    offsets.reset(10, 40);
    expect(offsets.append(11, [5])).toEqual([40]);
  });
});
