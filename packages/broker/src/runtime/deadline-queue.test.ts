import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineQueue, type Deadline } from './deadline-queue.js';

describe('DeadlineQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const at = (queue: DeadlineQueue, inMs: number, expired: string[], name: string): Deadline => ({ atMs: queue.now() + inMs, expire: () => expired.push(name) });

  it('expires each deadline at its own time, whatever the order they came in, with one timer', () => {
    const queue = new DeadlineQueue(() => Date.now());
    const expired: string[] = [];
    queue.add(at(queue, 300, expired, 'late'));
    queue.add(at(queue, 100, expired, 'early'));
    queue.add(at(queue, 200, expired, 'middle'));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(99);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['early']);
    vi.advanceTimersByTime(100);
    expect(expired).toEqual(['early', 'middle']);
    vi.advanceTimersByTime(100);
    expect(expired).toEqual(['early', 'middle', 'late']);
    expect(queue.size).toBe(0);
  });

  it('never expires a deleted deadline, and keeps one timer across a stream of settled ones', () => {
    const queue = new DeadlineQueue(() => Date.now());
    const expired: string[] = [];
    for (let i = 0; i < 50; i++) {
      const deadline = at(queue, 100, expired, `settled ${i}`);
      queue.add(deadline);
      vi.advanceTimersByTime(1);
      queue.delete(deadline);
      expect(vi.getTimerCount()).toBe(1);
    }
    const kept = at(queue, 100, expired, 'kept');
    queue.add(kept);
    vi.advanceTimersByTime(200);
    expect(expired).toEqual(['kept']);
  });

  it('lets an expiring deadline add itself again (a check repeated every delay)', () => {
    const queue = new DeadlineQueue(() => Date.now());
    let checks = 0;
    const check = {
      atMs: queue.now() + 50,
      expire: (): void => {
        checks++;
        check.atMs = queue.now() + 50;
        if (checks < 3) queue.add(check);
      },
    };
    queue.add(check);
    vi.advanceTimersByTime(49);
    expect(checks).toBe(0);
    vi.advanceTimersByTime(1);
    expect(checks).toBe(1);
    vi.advanceTimersByTime(100);
    expect(checks).toBe(3);
    vi.advanceTimersByTime(500);
    expect(checks).toBe(3);
  });

  it('waits for a deadline further away than a timer can take without waking every millisecond', () => {
    const queue = new DeadlineQueue(() => Date.now());
    const expired: string[] = [];
    const arm = vi.spyOn(globalThis, 'setTimeout');
    const days = 30 * 24 * 3600 * 1000;
    queue.add(at(queue, days, expired, 'far'));
    vi.advanceTimersByTime(10_000);
    expect(arm.mock.calls.length).toBe(1);
    vi.advanceTimersByTime(days - 10_001);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['far']);
    expect(arm.mock.calls.length).toBeLessThanOrEqual(3);
    arm.mockRestore();
  });

  it('clear forgets every deadline and the timer', () => {
    const queue = new DeadlineQueue(() => Date.now());
    const expired: string[] = [];
    queue.add(at(queue, 10, expired, 'a'));
    queue.clear();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
    expect(expired).toEqual([]);
  });

  it('never expires a deadline that an earlier one, due at the same fire, deleted in its expire', () => {
    const queue = new DeadlineQueue(() => Date.now());
    const expired: string[] = [];
    const second = at(queue, 10, expired, 'second');
    const first: Deadline = { atMs: queue.now() + 10, expire: () => (expired.push('first'), queue.delete(second)) };
    queue.add(first);
    queue.add(second);
    vi.advanceTimersByTime(10);
    expect(expired).toEqual(['first']);
    expect(queue.size).toBe(0);
  });

  it('still expires, at a next fire, the deadlines due with one whose expire threw', () => {
    const queue = new DeadlineQueue(() => Date.now());
    const expired: string[] = [];
    queue.add({ atMs: queue.now() + 10, expire: () => { throw new Error('expire failed'); } });
    queue.add(at(queue, 10, expired, 'after'));
    expect(() => vi.advanceTimersByTime(10)).toThrow('expire failed');
    vi.advanceTimersByTime(10);
    expect(expired).toEqual(['after']);
    expect(queue.size).toBe(0);
  });

  it('a deadline added in an expire earlier than the armed timer fires at its own time', () => {
    const queue = new DeadlineQueue(() => Date.now());
    const expired: string[] = [];
    queue.add(at(queue, 500, expired, 'late'));
    queue.add({ atMs: queue.now() + 10, expire: () => (expired.push('first'), queue.add(at(queue, 20, expired, 'added'))) });
    vi.advanceTimersByTime(29);
    expect(expired).toEqual(['first']);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['first', 'added']);
    vi.advanceTimersByTime(470);
    expect(expired).toEqual(['first', 'added', 'late']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
