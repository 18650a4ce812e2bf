import { describe, expect, it } from 'vitest';
import { Awareness } from './awareness.js';

describe('Awareness', () => {
  it('keeps its score in [0, max − 1] and scales timeouts by score + 1', () => {
    const a = new Awareness(8);
    expect(a.scale(5)).toBe(5);
    a.applyDelta(-1);
    expect(a.score).toBe(0);
    a.applyDelta(3);
    expect(a.score).toBe(3);
    expect(a.scale(5)).toBe(20);
    a.applyDelta(100);
    expect(a.score).toBe(7);
    expect(a.scale(10)).toBe(80);
    a.applyDelta(-2);
    expect(a.score).toBe(5);
  });

  it('with a maximum multiplier of 1 never scales', () => {
    const a = new Awareness(1);
    a.applyDelta(4);
    expect(a.scale(7)).toBe(7);
  });

  it('rejects a bad maximum', () => {
    expect(() => new Awareness(0)).toThrow(RangeError);
    expect(() => new Awareness(1.5)).toThrow(RangeError);
  });
});
