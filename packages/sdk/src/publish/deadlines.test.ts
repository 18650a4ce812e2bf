import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadlines } from './deadlines.js';

describe('Deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires an item at its deadline, not before', () => {
    const expired: string[] = [];
    const deadlines = new Deadlines<string>((item) => expired.push(item));
    deadlines.add('a', 100);
    vi.advanceTimersByTime(99);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['a']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps many items of one length on a single timer, each expiring at its own deadline', () => {
    const expired: number[] = [];
    const deadlines = new Deadlines<number>((item) => expired.push(item));
    for (let i = 0; i < 100; i++) {
      deadlines.add(i, 1000);
      vi.advanceTimersByTime(1);
    }
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(900); // 1000 ms after the first add
    expect(expired).toEqual([0]);
    vi.advanceTimersByTime(49);
    expect(expired).toEqual(Array.from({ length: 50 }, (_, i) => i));
    vi.advanceTimersByTime(50);
    expect(expired).toHaveLength(100);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never expires a cancelled item, and skips it to the next deadline', () => {
    const expired: string[] = [];
    const deadlines = new Deadlines<string>((item) => expired.push(item));
    const a = deadlines.add('a', 100);
    vi.advanceTimersByTime(50);
    deadlines.add('b', 100);
    deadlines.cancel(a);
    deadlines.cancel(a); // twice: no effect
    vi.advanceTimersByTime(60);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(40);
    expect(expired).toEqual(['b']);
  });

  it('fires a shorter timeout added later before a longer one added first', () => {
    const expired: string[] = [];
    const deadlines = new Deadlines<string>((item) => expired.push(item));
    deadlines.add('long', 1000);
    deadlines.add('short', 10);
    vi.advanceTimersByTime(10);
    expect(expired).toEqual(['short']);
    vi.advanceTimersByTime(990);
    expect(expired).toEqual(['short', 'long']);
  });

  it('still expires a stuck item after many items behind it were cancelled (compaction)', () => {
    const expired: number[] = [];
    const deadlines = new Deadlines<number>((item) => expired.push(item));
    deadlines.add(-1, 10_000);
    for (let i = 0; i < 5000; i++) deadlines.cancel(deadlines.add(i, 10_000));
    const last = deadlines.add(5000, 10_000);
    vi.advanceTimersByTime(10_000);
    expect(expired).toEqual([-1, 5000]);
    deadlines.cancel(last); // already expired: no effect
    expect(vi.getTimerCount()).toBe(0);
  });

  it('treats a delay below 1 ms or not a number as 1 ms, as setTimeout does', () => {
    const expired: string[] = [];
    const deadlines = new Deadlines<string>((item) => expired.push(item));
    deadlines.add('nan', Number.NaN);
    deadlines.add('zero', 0);
    vi.advanceTimersByTime(1);
    expect(expired.sort()).toEqual(['nan', 'zero']);
  });

  it('clear forgets every item and stops the timer', () => {
    const expired: string[] = [];
    const deadlines = new Deadlines<string>((item) => expired.push(item));
    const a = deadlines.add('a', 100);
    deadlines.add('b', 200);
    deadlines.clear();
    expect(vi.getTimerCount()).toBe(0);
    deadlines.cancel(a);
    vi.advanceTimersByTime(500);
    expect(expired).toEqual([]);
    deadlines.add('c', 10);
    vi.advanceTimersByTime(10);
    expect(expired).toEqual(['c']);
  });
});
