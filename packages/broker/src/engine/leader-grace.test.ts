import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaderGrace } from './leader-grace.js';

describe('LeaderGrace (readiness through a metadata election)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps a lost leader known for the grace, then tells once that it is not', () => {
    const expired = vi.fn();
    const grace = new LeaderGrace(1500, Date.now, expired);
    grace.observe('m1');
    expect(grace.known('m1')).toBe(true);
    grace.observe(null);
    vi.advanceTimersByTime(1499);
    expect(grace.known(null)).toBe(true);
    expect(expired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(grace.known(null)).toBe(false);
    expect(expired).toHaveBeenCalledTimes(1);
  });

  it('an election that ends within the grace never shows: a new leader ends it, and the timer with it', () => {
    const expired = vi.fn();
    const grace = new LeaderGrace(1500, Date.now, expired);
    grace.observe('m1');
    grace.observe(null);
    vi.advanceTimersByTime(800);
    grace.observe(null); // a second report of the same loss does not restart the grace
    vi.advanceTimersByTime(400);
    grace.observe('m2');
    vi.advanceTimersByTime(5000);
    expect(expired).not.toHaveBeenCalled();
    expect(grace.known('m2')).toBe(true);
    // The next loss gets a whole grace of its own.
    grace.observe(null);
    vi.advanceTimersByTime(1499);
    expect(grace.known(null)).toBe(true);
  });

  it('a leader never known counts as unknown at once (a broker that has not joined is not ready)', () => {
    const expired = vi.fn();
    const grace = new LeaderGrace(1500, Date.now, expired);
    grace.observe(null);
    expect(grace.known(null)).toBe(false);
    vi.advanceTimersByTime(5000);
    expect(expired).not.toHaveBeenCalled();
  });

  it('a loss reported again after the grace ran out stays unknown', () => {
    const grace = new LeaderGrace(1500, Date.now, () => {});
    grace.observe('m1');
    grace.observe(null);
    vi.advanceTimersByTime(2000);
    grace.observe(null);
    expect(grace.known(null)).toBe(false);
  });
});
