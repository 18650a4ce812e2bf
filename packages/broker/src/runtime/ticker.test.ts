import { afterEach, describe, expect, it, vi } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { TICK_MS, Ticker, ticksFromMs } from './ticker.js';

describe('ticksFromMs', () => {
  // Moved here with the helper from core/raft/config.test.ts and core/swim/config.test.ts: the cores know only ticks now.
  it.each([
    [100, 100, 1],
    [1000, 100, 10],
    [150, 100, 2],
    [1, 100, 1],
    [500, 50, 10],
  ])('%i ms at %i ms per tick is %i ticks', (ms, tickMs, ticks) => {
    expect(ticksFromMs(ms, tickMs)).toBe(ticks);
  });

  it('uses the one broker tick by default', () => {
    expect(TICK_MS).toBe(50);
    expect(ticksFromMs(500)).toBe(10);
    expect(ticksFromMs(50)).toBe(1);
    expect(ticksFromMs(51)).toBe(2);
  });

  it('rejects non-positive durations', () => {
    expect(() => ticksFromMs(0)).toThrow(RelayError);
    expect(() => ticksFromMs(0)).toThrow(/tickMs/);
    expect(() => ticksFromMs(100, -1)).toThrow(RelayError);
  });
});

describe('Ticker', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('calls every registered handler once per tick, and none once removed', () => {
    vi.useFakeTimers();
    const ticker = new Ticker(50);
    const calls: string[] = [];
    const removeRaft = ticker.add(() => calls.push('raft'));
    const removeSwim = ticker.add(() => calls.push('swim'));
    vi.advanceTimersByTime(100);
    expect(calls).toEqual(['raft', 'swim', 'raft', 'swim']);
    removeRaft();
    vi.advanceTimersByTime(50);
    expect(calls.slice(4)).toEqual(['swim']);
    removeSwim();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(500);
    expect(calls).toHaveLength(5);
  });

  it('starts again after it stopped', () => {
    vi.useFakeTimers();
    const ticker = new Ticker(50);
    let ticks = 0;
    ticker.add(() => ticks++)();
    const remove = ticker.add(() => ticks++);
    vi.advanceTimersByTime(50);
    expect(ticks).toBe(1);
    remove();
  });
});
