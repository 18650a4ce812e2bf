import { describe, expect, it } from 'vitest';
import { SWIM_DEFAULTS } from './config.js';
import { Suspicion, expectedConfirmations, suspicionBounds, suspicionTimeoutTicks } from './suspicion.js';

describe('suspicionBounds', () => {
  // min = suspicionMult × max(1, log10 n) × probeInterval (4 × … × 10 ticks); max = 6 × min.
  it.each([
    [1, 40, 240],
    [3, 40, 240],
    [7, 40, 240],
    [10, 40, 240],
    [20, 53, 318],
    [100, 80, 480],
    [1000, 120, 720],
  ])('n=%i: min %i, max %i ticks', (n, minTicks, maxTicks) => {
    expect(suspicionBounds(SWIM_DEFAULTS, n)).toEqual({ minTicks, maxTicks });
  });

  it('scales with the probe interval and the multipliers', () => {
    expect(suspicionBounds({ suspicionMult: 3, suspicionMaxTimeoutMult: 2, probeIntervalTicks: 5 }, 5)).toEqual({ minTicks: 15, maxTicks: 30 });
  });
});

describe('expectedConfirmations', () => {
  it.each([
    [4, 1, 0],
    [4, 3, 0], // only one member besides the accused and this node
    [4, 4, 2],
    [4, 50, 2],
    [3, 3, 1],
    [2, 10, 0],
    [6, 5, 0],
  ])('suspicionMult %i, n=%i: %i', (mult, n, k) => {
    expect(expectedConfirmations(mult, n)).toBe(k);
  });
});

describe('suspicionTimeoutTicks', () => {
  const bounds = { minTicks: 40, maxTicks: 240 };
  // max − (max − min) × log(c + 1) / log(k + 1), floored, never below min.
  it.each([
    [2, 0, 240],
    [2, 1, 113],
    [2, 2, 40],
    [2, 5, 40],
    [3, 1, 140],
    [3, 2, 81],
    [3, 3, 40],
    [0, 0, 40], // nobody can confirm: the minimum at once
  ])('k=%i, c=%i: %i ticks', (k, c, ticks) => {
    expect(suspicionTimeoutTicks(bounds, k, c)).toBe(ticks);
  });
});

describe('Suspicion', () => {
  it('counts independent accusers only, up to the expected number, shrinking the deadline', () => {
    const s = new Suspicion(100, { minTicks: 40, maxTicks: 240 }, 2, 'a');
    expect(s.deadlineTick()).toBe(340);
    expect(s.confirm('a')).toBe(false); // the first accuser cannot confirm itself
    expect(s.confirm('b')).toBe(true);
    expect(s.confirm('b')).toBe(false);
    expect(s.deadlineTick()).toBe(213);
    expect(s.confirm('c')).toBe(true);
    expect(s.confirm('d')).toBe(false); // enough already
    expect(s.confirmations).toBe(2);
    expect(s.deadlineTick()).toBe(140);
  });
});
