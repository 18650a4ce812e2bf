import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fullCollection, HeapSettle } from './heap-settle.js';

describe('HeapSettle', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('collects once, after a burst of group changes has been quiet for quietMs', () => {
    const collect = vi.fn();
    const settle = new HeapSettle({ collect, minChanges: 3, quietMs: 1000 });
    for (let i = 0; i < 5; i++) {
      settle.changed();
      vi.advanceTimersByTime(900); // still creating: the collection waits
    }
    expect(collect).not.toHaveBeenCalled();
    vi.advanceTimersByTime(100);
    expect(collect).toHaveBeenCalledTimes(2); // one settle runs two collections
    expect(settle.settles).toBe(1);
    vi.advanceTimersByTime(10_000);
    expect(collect).toHaveBeenCalledTimes(2);
    settle.close();
  });

  it('does nothing for fewer changes than a burst, and counts afresh after a collection', () => {
    const collect = vi.fn();
    const settle = new HeapSettle({ collect, minChanges: 3, quietMs: 1000 });
    settle.changed();
    settle.changed();
    vi.advanceTimersByTime(5000);
    expect(collect).not.toHaveBeenCalled();
    settle.changed();
    vi.advanceTimersByTime(1000);
    expect(collect).toHaveBeenCalledTimes(2);
    settle.changed();
    settle.changed();
    vi.advanceTimersByTime(5000);
    expect(collect).toHaveBeenCalledTimes(2);
    settle.close();
  });

  it('waits while the groups are busy, at most maxDeferrals times', () => {
    const collect = vi.fn();
    let busy = true;
    const settle = new HeapSettle({ collect, busy: () => busy, minChanges: 1, quietMs: 1000, maxDeferrals: 3 });
    settle.changed();
    vi.advanceTimersByTime(2500);
    expect(collect).not.toHaveBeenCalled();
    busy = false;
    vi.advanceTimersByTime(500);
    expect(collect).toHaveBeenCalledTimes(2);
    busy = true;
    settle.changed();
    vi.advanceTimersByTime(3999);
    expect(collect).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(1); // deferred three times: collected although still busy
    expect(collect).toHaveBeenCalledTimes(4);
    settle.close();
  });

  it('close cancels a pending collection', () => {
    const collect = vi.fn();
    const settle = new HeapSettle({ collect, minChanges: 1, quietMs: 1000 });
    settle.changed();
    settle.close();
    vi.advanceTimersByTime(5000);
    expect(collect).not.toHaveBeenCalled();
  });
});

describe('fullCollection', () => {
  it('returns a function that frees unreachable objects without --expose-gc', async () => {
    const gc = fullCollection();
    expect(typeof gc).toBe('function');
    let target: object | undefined = { payload: new Array(1000).fill(1) };
    const ref = new WeakRef(target);
    target = undefined;
    // A WeakRef's target is kept until the current job ends: collect in a later one.
    await new Promise((resolve) => setImmediate(resolve));
    gc?.();
    expect(ref.deref()).toBeUndefined();
  });
});
