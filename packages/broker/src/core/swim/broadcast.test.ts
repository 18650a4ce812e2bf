import { describe, expect, it } from 'vitest';
import { BroadcastQueue, estimateUpdateBytes, retransmitLimit } from './broadcast.js';
import type { Update } from './types.js';

const alive = (id: string, incarnation = 0): Update => ({ kind: 'alive', id, incarnation, address: `${id}:7501`, meta: { clientUrl: `ws://${id}:7401` } });
const suspect = (id: string, incarnation = 0): Update => ({ kind: 'suspect', id, incarnation, from: 'x' });
const ids = (updates: Update[]): string[] => updates.map((u) => u.id);
const big = { maxItems: 100, maxBytes: 1_000_000 };

describe('retransmitLimit', () => {
  // retransmitMult × ⌈log10(n + 1)⌉
  it.each([
    [4, 1, 4],
    [4, 3, 4],
    [4, 9, 4],
    [4, 10, 8],
    [4, 99, 8],
    [4, 100, 12],
    [2, 5, 2],
  ])('mult %i, n=%i: %i', (mult, n, limit) => {
    expect(retransmitLimit(mult, n)).toBe(limit);
  });
});

describe('BroadcastQueue', () => {
  it('sends the least transmitted first, newest first among equals', () => {
    const q = new BroadcastQueue(big);
    q.enqueue(alive('a'));
    q.enqueue(alive('b'));
    expect(ids(q.take(1000, 3))).toEqual(['b', 'a']);
    q.enqueue(alive('c'));
    expect(ids(q.take(1000, 3))).toEqual(['c', 'b', 'a']);
  });

  it('drops an update after `limit` transmissions', () => {
    const q = new BroadcastQueue(big);
    q.enqueue(alive('a'));
    expect(ids(q.take(1000, 2))).toEqual(['a']);
    expect(q.has('a')).toBe(true);
    expect(ids(q.take(1000, 2))).toEqual(['a']);
    expect(q.has('a')).toBe(false);
    expect(q.take(1000, 2)).toEqual([]);
  });

  it('replaces a queued update about the same member, restarting its count', () => {
    const q = new BroadcastQueue(big);
    q.enqueue(alive('a', 1));
    q.take(1000, 3);
    q.enqueue(suspect('a', 1));
    expect(q.length).toBe(1);
    expect(q.take(1000, 3)).toEqual([suspect('a', 1)]);
    expect(q.stats().replaced).toBe(1);
  });

  it('fills a byte budget, skipping what does not fit for smaller updates behind it', () => {
    const q = new BroadcastQueue(big);
    const large: Update = { kind: 'alive', id: 'c', incarnation: 0, address: 'c:7501', meta: { clientUrl: `ws://${'c'.repeat(500)}` } };
    q.enqueue(alive('a'));
    q.enqueue(suspect('b'));
    q.enqueue(large);
    const room = estimateUpdateBytes(suspect('b')) + estimateUpdateBytes(alive('a'));
    expect(ids(q.take(room, 5))).toEqual(['b', 'a']);
    expect(ids(q.take(10_000, 5))).toEqual(['c', 'b', 'a']);
  });

  it('leaves updates about excluded members untouched', () => {
    const q = new BroadcastQueue(big);
    q.enqueue(alive('a'));
    q.enqueue(alive('b'));
    expect(ids(q.take(10_000, 1, new Set(['b'])))).toEqual(['a']);
    expect(ids(q.take(10_000, 1))).toEqual(['b']);
  });

  it('is bounded in items: drops the most transmitted, then the oldest', () => {
    const q = new BroadcastQueue({ maxItems: 2, maxBytes: 1_000_000 });
    q.enqueue(alive('a'));
    q.enqueue(alive('b'));
    q.take(1000, 10); // both sent once
    q.enqueue(alive('c'));
    expect(q.length).toBe(2);
    expect(q.has('c')).toBe(true);
    expect(q.has('a')).toBe(false);
    expect(q.stats().dropped).toBe(1);
  });

  it('is bounded in bytes', () => {
    const one = estimateUpdateBytes(alive('a'));
    const q = new BroadcastQueue({ maxItems: 100, maxBytes: one * 2 });
    for (const id of ['a', 'b', 'c', 'd']) q.enqueue(alive(id));
    expect(q.stats().bytes).toBeLessThanOrEqual(one * 2);
    expect(ids(q.take(10_000, 1))).toEqual(['d', 'c']);
  });

  it('counts bytes back out as updates leave', () => {
    const q = new BroadcastQueue(big);
    q.enqueue(alive('a'));
    q.enqueue(suspect('b'));
    q.take(10_000, 1);
    expect(q.stats()).toMatchObject({ items: 0, bytes: 0 });
  });
});
