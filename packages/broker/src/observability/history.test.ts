import { describe, expect, it } from 'vitest';
import { closedSecond } from './history.js';

describe('closedSecond', () => {
  it('names the whole second a firing closes', () => {
    expect(closedSecond(5_000.4, 4_000, 1000)).toBe(5000);
    // Late by more than a second: the one point covers both seconds (the rate divides by the real span).
    expect(closedSecond(6_700, 4_000, 1000)).toBe(6000);
    // The first firing after a start in the middle of a second.
    expect(closedSecond(5_000, 4_300, 1000)).toBe(5000);
  });

  it('closes nothing when the timer fires just before the second it was set for, or twice in one second', () => {
    // Set for 5000 after sampling 4000, fired at 4999.6: sampling would add a second 4000/5000 point over 1 ms.
    expect(closedSecond(4_999.6, 4_000, 1000)).toBeUndefined();
    expect(closedSecond(5_000.2, 5_000, 1000)).toBeUndefined();
    // Before the first second after a start.
    expect(closedSecond(4_999.6, 4_300, 1000)).toBeUndefined();
  });
});
