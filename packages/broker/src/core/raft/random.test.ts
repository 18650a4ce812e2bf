import { describe, expect, it } from 'vitest';
import { SeededRandom, deriveRandom, hash32 } from './random.js';

describe('SeededRandom', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const draw = (r: SeededRandom): number[] => Array.from({ length: 8 }, () => r.nextUint32());
    expect(draw(new SeededRandom(1))).toEqual(draw(new SeededRandom(1)));
    expect(draw(new SeededRandom(1))).not.toEqual(draw(new SeededRandom(2)));
    expect(draw(new SeededRandom(0)).some((x) => x !== 0)).toBe(true);
  });

  it('draws integers in range, roughly uniformly', () => {
    const r = new SeededRandom(7);
    const counts = new Array<number>(10).fill(0);
    let outOfRange = 0;
    for (let i = 0; i < 10_000; i++) {
      const x = r.nextInt(10);
      if (x < 0 || x >= 10 || !Number.isInteger(x)) outOfRange++;
      else counts[x] = (counts[x] as number) + 1;
    }
    expect(outOfRange).toBe(0);
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(() => r.nextInt(0)).toThrow(RangeError);
  });

  it('derives distinct streams per label: no two nodes draw the same timeouts', () => {
    const a = deriveRandom(42, 'n1/1');
    const b = deriveRandom(42, 'n2/1');
    const seqA = Array.from({ length: 16 }, () => a.nextInt(10));
    const seqB = Array.from({ length: 16 }, () => b.nextInt(10));
    expect(seqA).not.toEqual(seqB);
    expect(hash32('n1')).not.toBe(hash32('n2'));
  });
});
