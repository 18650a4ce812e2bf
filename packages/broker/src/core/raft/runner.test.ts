import { describe, expect, it } from 'vitest';
import { RaftNode } from './node.js';
import { runReady, runReadySync, type ReadyHandlers } from './runner.js';
import { MemoryStorage } from './storage.js';
import type { RandomSource } from './types.js';

const ZERO: RandomSource = { nextInt: () => 0 };

function recordingIo(log: string[], storage = new MemoryStorage<string, string>(['a', 'b', 'c'])): ReadyHandlers<string, string> {
  return {
    storage: {
      applySnapshot: () => void log.push('persist snapshot'),
      append: (es) => {
        log.push(`persist ${es.length} entries`);
        storage.append(es);
      },
      setHardState: (hs) => {
        log.push(`persist hard state term=${hs.term}`);
        storage.setHardState(hs);
      },
      sync: () => void log.push('fsync'),
    },
    send: (ms) => void log.push(`send ${ms.map((m) => m.type).join(',')}`),
    restore: () => void log.push('restore'),
    apply: (es) => void log.push(`apply ${es.length}`),
  };
}

describe('runReady', () => {
  it('persists and fsyncs before sending, applies after, then advances', () => {
    const storage = new MemoryStorage<string, string>(['a', 'b', 'c']);
    const node = new RaftNode<string, string>({ id: 'b', storage, random: ZERO });
    node.step({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 1, entries: [{ type: 'noop', index: 1, term: 1 }] });
    const log: string[] = [];
    expect(runReady(node, recordingIo(log, storage))).toBe(true);
    expect(log).toEqual(['persist 1 entries', 'persist hard state term=1', 'fsync', 'send app-resp', 'apply 1']);
    expect(node.appliedIndex).toBe(1);
    expect(runReady(node, recordingIo(log, storage))).toBe(false);
  });

  it('sends nothing and does not advance when persisting fails', () => {
    const node = new RaftNode<string, string>({ id: 'a', storage: new MemoryStorage(['a', 'b', 'c']), random: ZERO, config: { preVote: false } });
    node.campaign();
    const log: string[] = [];
    const io = recordingIo(log);
    const failing: ReadyHandlers<string, string> = {
      ...io,
      storage: {
        ...io.storage,
        sync: () => {
          throw new Error('disk gone');
        },
      },
    };
    expect(() => runReady(node, failing)).toThrow('disk gone');
    expect(log).toEqual(['persist hard state term=1']);
    expect(() => node.ready()).toThrow(/before advance/);
  });

  it('returns at once, not a promise, while every handler finishes at once (the simulator stays synchronous)', () => {
    const storage = new MemoryStorage<string, string>(['a', 'b', 'c']);
    const node = new RaftNode<string, string>({ id: 'b', storage, random: ZERO });
    node.step({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 1, entries: [{ type: 'noop', index: 1, term: 1 }] });
    const log: string[] = [];
    expect(runReady(node, recordingIo(log, storage))).toBe(true);
    expect(node.appliedIndex).toBe(1);
    expect(runReadySync(node, recordingIo(log, storage))).toBe(false);
  });

  it('awaits only a handler that returns a promise, keeps the same order, and advances once it settled', async () => {
    const storage = new MemoryStorage<string, string>(['a', 'b', 'c']);
    const node = new RaftNode<string, string>({ id: 'b', storage, random: ZERO });
    node.step({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 1, entries: [{ type: 'noop', index: 1, term: 1 }] });
    const log: string[] = [];
    const io = recordingIo(log, storage);
    let fsynced: () => void = () => {};
    const handled = runReady(node, {
      ...io,
      storage: {
        ...io.storage,
        sync: () =>
          new Promise<void>((resolve) => {
            fsynced = () => {
              log.push('fsync (async)');
              resolve();
            };
          }),
      },
    });
    expect(handled).toBeInstanceOf(Promise);
    // Waiting for the fsync: nothing that depends on it has left, nothing is applied, the batch is not advanced.
    await Promise.resolve();
    expect(log).toEqual(['persist 1 entries', 'persist hard state term=1']);
    expect(node.appliedIndex).toBe(0);
    fsynced();
    await expect(handled).resolves.toBe(true);
    expect(log).toEqual(['persist 1 entries', 'persist hard state term=1', 'fsync (async)', 'send app-resp', 'apply 1']);
    expect(node.appliedIndex).toBe(1);
  });

  it('sends nothing more and does not advance when an awaited handler rejects', async () => {
    const node = new RaftNode<string, string>({ id: 'a', storage: new MemoryStorage(['a', 'b', 'c']), random: ZERO, config: { preVote: false } });
    node.campaign();
    const log: string[] = [];
    const io = recordingIo(log);
    const handled = runReady(node, { ...io, storage: { ...io.storage, sync: () => Promise.reject(new Error('disk gone')) } });
    await expect(handled).rejects.toThrow('disk gone');
    expect(log).toEqual(['persist hard state term=1']);
    expect(() => node.ready()).toThrow(/before advance/);
  });

  it('refuses, in runReadySync, a handler that returns a promise', () => {
    const node = new RaftNode<string, string>({ id: 'a', storage: new MemoryStorage(['a', 'b', 'c']), random: ZERO, config: { preVote: false } });
    node.campaign();
    const io = recordingIo([]);
    expect(() => runReadySync(node, { ...io, storage: { ...io.storage, sync: async () => {} } })).toThrow(/returned a promise/);
  });
});

describe('runReady with handlers that finish at once or later, call by call', () => {
  /** A follower's Ready with every step (entries, hard state, fsync, a response, an apply); `async` names the handlers that return a promise. */
  function run(async: ReadonlySet<string>, failAt?: { step: string; how: 'throw' | 'reject' }) {
    const storage = new MemoryStorage<string, string>(['a', 'b', 'c']);
    const node = new RaftNode<string, string>({ id: 'b', storage, random: ZERO });
    node.step({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 1, entries: [{ type: 'noop', index: 1, term: 1 }] });
    const log: string[] = [];
    const io = recordingIo(log, storage);
    const wrap = <A extends unknown[]>(name: string, handler: (...args: A) => void) => (...args: A): void | Promise<void> => {
      if (failAt?.step === name && failAt.how === 'throw') throw new Error(`${name} failed`);
      if (failAt?.step === name) return Promise.reject(new Error(`${name} failed`));
      if (!async.has(name)) return handler(...args);
      return new Promise<void>((resolve) => setImmediate(resolve)).then(() => handler(...args));
    };
    let handled: boolean | Promise<boolean>;
    try {
      handled = runReady(node, {
        storage: { ...io.storage, append: wrap('append', io.storage.append), setHardState: wrap('setHardState', io.storage.setHardState), sync: wrap('sync', io.storage.sync) },
        send: io.send,
        restore: io.restore,
        apply: wrap('apply', io.apply),
      });
    } catch (err) {
      handled = Promise.reject(err); // a step that failed at once, before any awaited one: thrown, as the runner documents
    }
    return { node, log, handled };
  }
  const names = ['append', 'setHardState', 'sync', 'apply'];
  const everyMix = Array.from({ length: 1 << names.length }, (_, bits) => new Set(names.filter((_, i) => (bits & (1 << i)) !== 0)));

  it('runs every step once, in the contract order, and advances once, whichever handlers return a promise', async () => {
    for (const async of everyMix) {
      const { node, log, handled } = run(async);
      expect(handled === true || handled instanceof Promise, [...async].join(',')).toBe(true);
      expect(handled === true, [...async].join(',')).toBe(async.size === 0);
      await expect(Promise.resolve(handled)).resolves.toBe(true);
      expect(log, [...async].join(',')).toEqual(['persist 1 entries', 'persist hard state term=1', 'fsync', 'send app-resp', 'apply 1']);
      expect(node.appliedIndex).toBe(1);
      expect(node.hasReady()).toBe(false);
    }
  });

  it('stops at a failed step (thrown or rejected) after any mix of earlier ones, sends nothing after it and does not advance', async () => {
    const order = ['persist 1 entries', 'persist hard state term=1', 'fsync', 'send app-resp', 'apply 1'];
    const before: Record<string, number> = { append: 0, setHardState: 1, sync: 2, apply: 4 };
    for (const async of everyMix) {
      for (const step of names) {
        for (const how of ['throw', 'reject'] as const) {
          const { node, log, handled } = run(async, { step, how });
          let failed: unknown;
          try {
            await handled;
          } catch (err) {
            failed = err;
          }
          expect(String(failed), `${[...async].join(',')} ${step} ${how}`).toMatch(`${step} failed`);
          expect(log).toEqual(order.slice(0, before[step]));
          expect(() => node.ready()).toThrow(/before advance/);
        }
      }
    }
  });
});
