import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RouteSwitches } from './route-switch.js';

describe('RouteSwitches (fake clock)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lets a partition go at once when nothing of it is in flight elsewhere', () => {
    const switches = new RouteSwitches(500, () => expect.unreachable());
    expect(switches.maySend('0:t', 't', 0, false)).toBe(true);
    expect(switches.has('0:t')).toBe(false);
  });

  it('holds a partition with publishes in flight elsewhere until none are, then releases it once', () => {
    const expired: number[] = [];
    const switches = new RouteSwitches(500, (_, partition) => expired.push(partition));
    expect(switches.maySend('0:t', 't', 0, true)).toBe(false);
    expect(switches.maySend('1:t', 't', 1, true)).toBe(false);
    let inFlight = new Set([0, 1]);
    expect(switches.release((_, p) => inFlight.has(p))).toEqual([]);
    inFlight = new Set([1]);
    expect(switches.release((_, p) => inFlight.has(p))).toEqual([{ topic: 't', partition: 0 }]);
    expect(switches.release((_, p) => inFlight.has(p))).toEqual([]); // released once
    vi.advanceTimersByTime(10_000);
    expect(expired).toEqual([1]); // the released partition's timer is gone; partition 1's ran out
  });

  it('gives up waiting after the bound, once, counting from the first time it had to wait', () => {
    const expired: number[] = [];
    const switches = new RouteSwitches(500, (_, partition) => expired.push(partition));
    switches.maySend('0:t', 't', 0, true);
    vi.advanceTimersByTime(300);
    switches.maySend('0:t', 't', 0, true); // asked again: the wait does not start over
    vi.advanceTimersByTime(199);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual([0]);
    expect(switches.has('0:t')).toBe(false);
    vi.advanceTimersByTime(10_000);
    expect(expired).toEqual([0]);
  });

  it('forgets a wait when the partition may go (its old route was withdrawn) or on clear', () => {
    const switches = new RouteSwitches(500, () => expect.unreachable());
    switches.maySend('0:t', 't', 0, true);
    expect(switches.maySend('0:t', 't', 0, false)).toBe(true);
    switches.maySend('1:t', 't', 1, true);
    switches.clear();
    vi.advanceTimersByTime(10_000);
    expect(switches.has('1:t')).toBe(false);
  });
});
