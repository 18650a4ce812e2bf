import { describe, expect, it } from 'vitest';
import { SparseIndex } from './sparse-index.js';

describe('SparseIndex', () => {
  it('holds no arrays until its first entry, then keeps every entry as it grows', () => {
    const index = new SparseIndex();
    expect(index.memoryBytes).toBe(0);
    expect(index.floorByOffset(10)).toBe(-1);
    for (let i = 0; i < 100; i++) index.push(i * 10, i * 1000, 1_700_000_000_000 + i);
    expect(index.length).toBe(100);
    expect(index.memoryBytes).toBe(128 * (4 + 4 + 8));
    expect([index.relOffsetAt(0), index.relOffsetAt(57), index.positionAt(99), index.timestampAt(99)]).toEqual([0, 570, 99_000, 1_700_000_000_099]);
    expect(index.floorByOffset(575)).toBe(57);
    const decoded = SparseIndex.decode(index.encodeOffsets(), index.encodeTimes(995, 1_700_000_000_100), 100_000);
    expect(decoded?.index.length).toBe(100);
    expect([decoded?.index.positionAt(42), decoded?.lastRelOffset]).toEqual([42_000, 995]);
  });
});
