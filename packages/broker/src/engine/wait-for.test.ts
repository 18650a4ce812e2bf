import { EventEmitter } from 'eventemitter3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { waitFor } from './wait-for.js';

describe('waitFor', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves at once, with no listener, when the check already holds', async () => {
    const emitter = new EventEmitter<{ changed: () => void }>();
    await expect(waitFor(emitter, 'changed', () => 'now', 1000)).resolves.toBe('now');
    expect(emitter.listenerCount('changed')).toBe(0);
  });

  it('re-checks on every event, resolves with the first defined value and removes its listener', async () => {
    vi.useFakeTimers();
    const emitter = new EventEmitter<{ changed: () => void }>();
    let leader: string | undefined;
    const checks = vi.fn(() => leader);
    const waiting = waitFor(emitter, 'changed', checks, 1000);
    expect(emitter.listenerCount('changed')).toBe(1);
    emitter.emit('changed');
    expect(checks).toHaveBeenCalledTimes(2);
    leader = 'b2';
    emitter.emit('changed');
    await expect(waiting).resolves.toBe('b2');
    expect(emitter.listenerCount('changed')).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    // Never polls: no event, no check.
    vi.advanceTimersByTime(5000);
    expect(checks).toHaveBeenCalledTimes(3);
  });

  it('rejects with TIMEOUT after timeoutMs, naming what it waited for, and removes its listener', async () => {
    vi.useFakeTimers();
    const emitter = new EventEmitter<{ changed: () => void }>();
    const waiting = waitFor(emitter, 'changed', () => undefined, 250, 'a leader of p/t/0');
    const failed = waiting.catch((err: unknown) => err);
    vi.advanceTimersByTime(249);
    expect(emitter.listenerCount('changed')).toBe(1);
    vi.advanceTimersByTime(1);
    const error = await failed;
    expect(error).toBeInstanceOf(RelayError);
    expect(error).toMatchObject({ code: 'TIMEOUT', message: 'timed out after 250 ms waiting for a leader of p/t/0' });
    expect(emitter.listenerCount('changed')).toBe(0);
  });

  it('checks once more when the time is up, so a change whose event it missed still counts', async () => {
    vi.useFakeTimers();
    const emitter = new EventEmitter<{ changed: () => void }>();
    let value: number | undefined;
    const waiting = waitFor(emitter, 'changed', () => value, 100);
    value = 7; // changed without an event
    vi.advanceTimersByTime(100);
    await expect(waiting).resolves.toBe(7);
  });

  it('rejects with what the check throws, and cleans up', async () => {
    const emitter = new EventEmitter<{ changed: () => void }>();
    let fail = false;
    const waiting = waitFor(emitter, 'changed', () => {
      if (fail) throw new RelayError('INVALID_PARTITION', 'no such partition');
      return undefined;
    }, 1000);
    fail = true;
    emitter.emit('changed');
    await expect(waiting).rejects.toMatchObject({ code: 'INVALID_PARTITION' });
    expect(emitter.listenerCount('changed')).toBe(0);
    await expect(waitFor(emitter, 'changed', () => { throw new Error('at once'); }, 10)).rejects.toThrow('at once');
  });

  it('ignores the event arguments and other events', async () => {
    const emitter = new EventEmitter<{ leader: (group: string) => void; applied: () => void }>();
    let ready = false;
    const waiting = waitFor(emitter, 'leader', () => (ready ? true : undefined), 1000);
    ready = true;
    emitter.emit('applied');
    expect(emitter.listenerCount('leader')).toBe(1);
    emitter.emit('leader', 'p/t/0');
    await expect(waiting).resolves.toBe(true);
  });
});
