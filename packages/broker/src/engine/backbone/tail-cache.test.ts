import { describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../core/partition/partition.js';
import { TailCache } from './tail-cache.js';

const message = (offset: number, timestamp = offset * 10, bytes = 1): StoredMessage => ({ offset, timestamp, data: new Uint8Array(bytes), encoding: 'raw' });

describe('backbone tail cache', () => {
  it('answers reads from memory and says when an offset is older than it holds', () => {
    const cache = new TailCache(3, 100);
    for (let i = 0; i < 5; i++) cache.add(message(i));
    expect(cache.endOffset).toBe(5);
    expect(cache.startOffset).toBe(0);
    expect(cache.cachedFrom).toBe(2);
    expect(cache.read(3, 10, 100)?.map((m) => m.offset)).toEqual([3, 4]);
    expect(cache.read(1, 10, 100)).toBeUndefined();
    expect(cache.read(5, 10, 100)).toEqual([]);
    expect(cache.read(2, 2, 100)?.map((m) => m.offset)).toEqual([2, 3]);
  });

  it('tracks per producer the next seq and the offsets of recent seqs, within the window', () => {
    const cache = new TailCache(1000, 2);
    cache.add(message(0), { id: 'p', seq: 0 });
    cache.add(message(1), { id: 'q', seq: 7 });
    cache.add(message(2), { id: 'p', seq: 1 });
    cache.add(message(3), { id: 'p', seq: 2 });
    expect(cache.nextSeq('p')).toBe(3);
    expect(cache.nextSeq('q')).toBe(8);
    expect(cache.nextSeq('unknown')).toBe(0);
    expect(cache.offsetOf('p', 2)).toBe(3);
    expect(cache.offsetOf('p', 1)).toBe(2);
    expect(cache.offsetOf('p', 0)).toBeUndefined(); // beyond the window of 2
    expect(cache.offsetOf('q', 7)).toBe(1);
  });

  it('started near the end: bounds from the stream\'s first offset, older reads and times left to the backbone, no holes invented below the tail', () => {
    const cache = new TailCache(1000, 10);
    cache.startAt(3, 1000);
    expect({ start: cache.startOffset, end: cache.endOffset, cachedFrom: cache.cachedFrom }).toEqual({ start: 3, end: 1000, cachedFrom: 1000 });
    expect(cache.read(500, 10, 100)).toBeUndefined();
    expect(cache.offsetForTime(0)).toBeUndefined();
    cache.add(message(1000), { id: 'p', seq: 40 });
    cache.add(message(1002), { id: 'p', seq: 41 }); // 1001 a hole
    expect(cache.startOffset).toBe(3);
    expect(cache.holesBetween(3, 1003)).toBe(1);
    expect(cache.read(999, 10, 100)).toBeUndefined(); // 999 is below the tail: the backbone has it
    expect(cache.read(1001, 10, 100)?.map((m) => m.offset)).toEqual([1002]);
    expect(cache.offsetForTime(0)).toBeUndefined(); // older messages may be earlier in time
    expect(cache.offsetForTime(10_001)).toBe(1002);
    cache.retainedFrom(50);
    expect(cache.startOffset).toBe(50);
    // Started once: a later call changes nothing.
    cache.startAt(0, 0);
    expect({ start: cache.startOffset, end: cache.endOffset }).toEqual({ start: 50, end: 1003 });
  });

  it('says below which offset a producer\'s unheld seqs are: its oldest held offset, else where the tail began', () => {
    const cache = new TailCache(1000, 2);
    cache.startAt(0, 100);
    cache.add(message(100), { id: 'q', seq: 0 });
    cache.add(message(101), { id: 'p', seq: 7 });
    cache.add(message(102), { id: 'p', seq: 8 });
    cache.add(message(103), { id: 'p', seq: 9 });
    expect(cache.searchBelow('p')).toBe(102); // seq 7 beyond the window of 2
    expect(cache.searchBelow('q')).toBe(100);
    expect(cache.searchBelow('unseen')).toBe(100);
    const fromStart = new TailCache(1000, 2);
    fromStart.add(message(4));
    expect(fromStart.searchBelow('unseen')).toBe(4);
  });

  it('ignores messages it already has (a resubscription re-delivers a chunk)', () => {
    const cache = new TailCache(1000, 10);
    cache.add(message(0), { id: 'p', seq: 0 });
    cache.add(message(0), { id: 'p', seq: 0 });
    expect(cache.endOffset).toBe(1);
    expect(cache.read(0, 10, 100)).toHaveLength(1);
  });

  it('starts where retention left the stream', () => {
    const cache = new TailCache(1000, 10);
    cache.skipTo(40);
    expect(cache.startOffset).toBe(40);
    cache.add(message(40));
    expect([cache.startOffset, cache.endOffset]).toEqual([40, 41]);
  });

  it('finds the first offset at or after a time, or says it must read older messages', () => {
    const cache = new TailCache(2, 10);
    for (let i = 0; i < 4; i++) cache.add(message(i));
    expect(cache.offsetForTime(25)).toBe(3);
    expect(cache.offsetForTime(30)).toBe(3);
    expect(cache.offsetForTime(31)).toBe(4);
    expect(cache.offsetForTime(5)).toBeUndefined(); // offsets 0-1 left memory
    const whole = new TailCache(1000, 10);
    for (let i = 0; i < 4; i++) whole.add(message(i));
    expect(whole.offsetForTime(0)).toBe(0);
  });

  it('reads across holes (offsets taken by a segment tracking chunk): a hole offset reads from the next message', () => {
    const cache = new TailCache(1000, 10);
    for (const offset of [0, 1, 2, 4, 5, 9, 10]) cache.add(message(offset), { id: 'p', seq: offset });
    expect([cache.startOffset, cache.endOffset, cache.cachedFrom]).toEqual([0, 11, 0]);
    expect(cache.read(2, 10, 100)?.map((m) => m.offset)).toEqual([2, 4, 5, 9, 10]);
    expect(cache.read(3, 10, 100)?.map((m) => m.offset)).toEqual([4, 5, 9, 10]);
    expect(cache.read(6, 2, 100)?.map((m) => m.offset)).toEqual([9, 10]);
    expect(cache.read(10, 10, 100)?.map((m) => m.offset)).toEqual([10]);
    expect(cache.read(11, 10, 100)).toEqual([]);
    expect(cache.offsetOf('p', 9)).toBe(9);
    expect(cache.nextSeq('p')).toBe(11);
  });

  it('reads across holes once older messages left memory, and sends older offsets to the backbone', () => {
    const cache = new TailCache(3, 10);
    for (const offset of [0, 2, 3, 5, 7, 8]) cache.add(message(offset));
    expect(cache.cachedFrom).toBe(5);
    expect(cache.read(4, 10, 100)).toBeUndefined();
    expect(cache.read(5, 10, 100)?.map((m) => m.offset)).toEqual([5, 7, 8]);
    expect(cache.read(6, 10, 100)?.map((m) => m.offset)).toEqual([7, 8]);
    expect(cache.endOffset).toBe(9);
  });

  it('moves its start up when a read of the backbone shows retention removed older messages', () => {
    const cache = new TailCache(1000, 10);
    for (let i = 0; i < 5; i++) cache.add(message(i));
    cache.retainedFrom(3);
    expect([cache.startOffset, cache.endOffset]).toEqual([3, 5]);
    cache.retainedFrom(1); // never back down
    expect(cache.startOffset).toBe(3);
    cache.retainedFrom(99); // never beyond the end
    expect(cache.startOffset).toBe(5);
  });

  it('counts the holes between two offsets (segment tracking chunks, foreign messages), forgetting those retention removed', () => {
    const cache = new TailCache(1000, 10);
    // Offsets 0-2, hole 3, 4-6, holes 7-8, 9, a foreign message at 10 (skipTo 11), 11.
    for (const o of [0, 1, 2, 4, 5, 6, 9]) cache.add(message(o));
    cache.skipTo(11);
    cache.add(message(11));
    expect(cache.endOffset).toBe(12);
    expect(cache.holesBetween(0, 12)).toBe(4);
    expect(cache.holesBetween(4, 12)).toBe(3);
    expect(cache.holesBetween(3, 4)).toBe(1);
    expect(cache.holesBetween(8, 10)).toBe(1);
    expect(cache.holesBetween(5, 7)).toBe(0);
    expect(cache.holesBetween(12, 12)).toBe(0);
    expect(cache.holesBetween(9, 3)).toBe(0);
    cache.retainedFrom(9);
    expect(cache.holesBetween(0, 12)).toBe(1);
    expect(cache.holesBetween(9, 12)).toBe(1);
  });

  it('knows no holes below the first message it read (retention left the stream there)', () => {
    const cache = new TailCache(1000, 10);
    cache.add(message(41));
    cache.add(message(43));
    expect(cache.holesBetween(0, 44)).toBe(1);
    // Where the stream is known to start (skipTo), an offset without a message there is a hole.
    const skipped = new TailCache(1000, 10);
    skipped.skipTo(40);
    skipped.add(message(41));
    expect(skipped.holesBetween(40, 42)).toBe(1);
  });
});
