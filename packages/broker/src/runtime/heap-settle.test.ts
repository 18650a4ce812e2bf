import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fullCollection, HEAP_SETTLE_FOLLOW_UP_CHECKS, HeapSettle } from './heap-settle.js';

describe('HeapSettle', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('collects twice, once, after a burst of group changes has been quiet for quietMs', async () => {
    const collect = vi.fn();
    const settle = new HeapSettle({ collect, minChanges: 3, quietMs: 1000 });
    for (let i = 0; i < 5; i++) {
      settle.changed();
      await vi.advanceTimersByTimeAsync(900); // still creating: the collection waits
    }
    expect(collect).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(100);
    expect(collect).toHaveBeenCalledTimes(2);
    expect(settle.settles).toBe(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(collect).toHaveBeenCalledTimes(2);
    settle.close();
  });

  it('does nothing for fewer changes than a burst, and counts afresh after a collection', async () => {
    const collect = vi.fn();
    const settle = new HeapSettle({ collect, minChanges: 3, quietMs: 1000 });
    settle.changed();
    settle.changed();
    await vi.advanceTimersByTimeAsync(5000);
    expect(collect).not.toHaveBeenCalled();
    settle.changed();
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(2);
    settle.changed();
    settle.changed();
    await vi.advanceTimersByTimeAsync(5000);
    expect(collect).toHaveBeenCalledTimes(2);
    settle.close();
  });

  it('settles once more when the groups still awake at the first settle are idle, and gives up on groups that never are', async () => {
    const collect = vi.fn();
    let idle = false;
    const settle = new HeapSettle({ collect, idle: () => idle, minChanges: 1, quietMs: 1000 });
    settle.changed();
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(2); // not busy: the first settle runs with some groups awake
    await vi.advanceTimersByTimeAsync(5000);
    expect(collect).toHaveBeenCalledTimes(2); // the follow-up waits for them
    idle = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(4);
    expect(settle.settles).toBe(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(collect).toHaveBeenCalledTimes(4); // idle at the follow-up: nothing more

    idle = false;
    settle.changed();
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(6);
    await vi.advanceTimersByTimeAsync(HEAP_SETTLE_FOLLOW_UP_CHECKS * 1000);
    idle = true;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(collect).toHaveBeenCalledTimes(6); // never idle within the checks: given up
    settle.close();
  });

  it('waits as long as the groups are busy', async () => {
    const collect = vi.fn();
    let busy = true;
    const settle = new HeapSettle({ collect, busy: () => busy, minChanges: 1, quietMs: 1000 });
    settle.changed();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(collect).not.toHaveBeenCalled();
    busy = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(2);
    settle.close();
  });

  it('runs the second collection after the first finished, and no settle while one runs', async () => {
    const finish: Array<() => void> = [];
    const collect = vi.fn(() => new Promise<void>((resolve) => finish.push(resolve)));
    const settle = new HeapSettle({ collect, minChanges: 1, quietMs: 1000 });
    settle.changed();
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(1);
    settle.changed(); // a burst while collecting: its settle waits for this one
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(1);
    finish.shift()?.();
    await vi.advanceTimersByTimeAsync(0);
    expect(collect).toHaveBeenCalledTimes(2);
    expect(settle.settles).toBe(0); // counted once both collections finished
    finish.shift()?.();
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(3);
    expect(settle.settles).toBe(1);
    finish.shift()?.();
    await vi.advanceTimersByTimeAsync(0);
    finish.shift()?.();
    await vi.advanceTimersByTimeAsync(0);
    expect(collect).toHaveBeenCalledTimes(4);
    expect(settle.settles).toBe(2);
    settle.close();
  });

  it('a collection that throws is swallowed and not counted', async () => {
    const collect = vi.fn(() => Promise.reject(new Error('no gc')));
    const settle = new HeapSettle({ collect, minChanges: 1, quietMs: 1000 });
    settle.changed();
    await vi.advanceTimersByTimeAsync(1000);
    expect(collect).toHaveBeenCalledTimes(1);
    expect(settle.settles).toBe(0);
    settle.close();
  });

  it('close cancels a pending collection', async () => {
    const collect = vi.fn();
    const settle = new HeapSettle({ collect, minChanges: 1, quietMs: 1000 });
    settle.changed();
    settle.close();
    await vi.advanceTimersByTimeAsync(5000);
    expect(collect).not.toHaveBeenCalled();
  });
});

describe('fullCollection', () => {
  it('returns a collection that frees unreachable objects without --expose-gc', async () => {
    const gc = fullCollection();
    expect(typeof gc).toBe('function');
    let target: object | undefined = { payload: new Array(1000).fill(1) };
    const ref = new WeakRef(target);
    target = undefined;
    // A WeakRef's target is kept until the current job ends: collect in a later one.
    await new Promise((resolve) => setImmediate(resolve));
    await gc?.();
    expect(ref.deref()).toBeUndefined();
  });
});
