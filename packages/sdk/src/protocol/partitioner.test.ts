import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashKey, partitionForKey } from './partitioner.js';

// Any Unicode scalar value. (fast-check's built-in 'binary' unit costs ~1 s of setup on first use.)
const codePointArb = fc
  .oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0x80, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff }))
  .map((c) => String.fromCodePoint(c));
const keyArb = fc.string({ unit: codePointArb, maxLength: 64 });

describe('hashKey (FNV-1a, 32 bit)', () => {
  it.each([
    ['', 0x811c9dc5],
    ['a', 0xe40c292c],
    ['b', 0xe70c2de5],
    ['foo', 0xa9f37ed7],
    ['foobar', 0xbf9cf968],
  ])('hash of %j is the published FNV-1a vector', (key, expected) => {
    expect(hashKey(key)).toBe(expected);
  });

  it('hashes UTF-8 bytes, not UTF-16 code units', () => {
    // "é" is C3 A9 in UTF-8: FNV-1a over those two bytes.
    let hash = 0x811c9dc5;
    for (const byte of [0xc3, 0xa9]) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    expect(hashKey('\u00e9')).toBe(hash);
    expect(hashKey('\u00e9')).not.toBe(hashKey('\u00c3\u00a9'));
  });

  it('is an unsigned 32-bit integer for any key', () => {
    fc.assert(
      fc.property(keyArb, (key) => {
        const hash = hashKey(key);
        expect(Number.isInteger(hash)).toBe(true);
        expect(hash).toBeGreaterThanOrEqual(0);
        expect(hash).toBeLessThanOrEqual(0xffffffff);
      }),
      { numRuns: 500 },
    );
  });
});

describe('partitionForKey', () => {
  it('is hash mod partitions, in range and stable', () => {
    fc.assert(
      fc.property(keyArb, fc.integer({ min: 1, max: 1024 }), (key, partitions) => {
        const partition = partitionForKey(key, partitions);
        expect(Number.isInteger(partition)).toBe(true);
        expect(partition).toBeGreaterThanOrEqual(0);
        expect(partition).toBeLessThan(partitions);
        expect(partitionForKey(key, partitions)).toBe(partition);
        expect(partition).toBe(hashKey(key) % partitions);
      }),
      { numRuns: 1000 },
    );
  });

  it('puts every key in partition 0 of a single-partition topic', () => {
    expect(partitionForKey('anything', 1)).toBe(0);
    expect(partitionForKey('', 1)).toBe(0);
  });

  it('spreads 10k keys roughly evenly over 8 partitions', () => {
    const partitions = 8;
    const keys = 10_000;
    const counts = new Array<number>(partitions).fill(0);
    for (let i = 0; i < keys; i++) {
      const p = partitionForKey(`customer-${i}`, partitions);
      counts[p] = (counts[p] as number) + 1;
    }
    const expected = keys / partitions;
    for (const count of counts) {
      expect(count).toBeGreaterThan(expected * 0.85);
      expect(count).toBeLessThan(expected * 1.15);
    }
    // Chi-square with 7 degrees of freedom; 24.3 is the 0.001 critical value.
    const chiSquare = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    expect(chiSquare).toBeLessThan(24.3);
  });
});
