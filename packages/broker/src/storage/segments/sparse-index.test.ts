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

  it('holds its first entry without arrays (an idle segment has one), and finds entries on both sides of it', () => {
    const index = new SparseIndex();
    index.push(0, 0, 1_000);
    expect(index.memoryBytes).toBe(0);
    expect([index.floorByOffset(0), index.floorByOffset(5), index.lastBeforeTime(1_000), index.lastBeforeTime(1_001)]).toEqual([0, 0, -1, 0]);
    index.push(4, 4096, 2_000);
    expect(index.memoryBytes).toBe(8 * (4 + 4 + 8));
    expect([index.relOffsetAt(1), index.positionAt(1), index.timestampAt(1)]).toEqual([4, 4096, 2_000]);
    expect([index.floorByOffset(3), index.floorByOffset(4), index.lastBeforeTime(2_001)]).toEqual([0, 1, 1]);
    index.truncateFrom(4);
    expect([index.length, index.floorByOffset(9)]).toEqual([1, 0]);
    const decoded = SparseIndex.decode(index.encodeOffsets(), index.encodeTimes(3, 1_500), 100_000);
    expect([decoded?.index.length, decoded?.index.timestampAt(0), decoded?.lastRelOffset]).toEqual([1, 1_000, 3]);
  });
});
