import { describe, expect, it } from 'vitest';
import { RaftNode } from './node.js';
import { runReady, runReadyAsync, type ReadyHandlers } from './runner.js';
import { MemoryStorage } from './storage.js';
import type { RandomSource } from './types.js';

const ZERO: RandomSource = { nextInt: () => 0 };

function recordingIo(log: string[], storage = new MemoryStorage<string, string>(['a', 'b', 'c'])): ReadyHandlers<string, string> {
  return {
    storage: {
      applySnapshot: () => log.push('persist snapshot'),
      append: (es) => {
        log.push(`persist ${es.length} entries`);
        storage.append(es);
      },
      setHardState: (hs) => {
        log.push(`persist hard state term=${hs.term}`);
        storage.setHardState(hs);
      },
      sync: () => log.push('fsync'),
    },
    send: (ms) => log.push(`send ${ms.map((m) => m.type).join(',')}`),
    restore: () => log.push('restore'),
    apply: (es) => log.push(`apply ${es.length}`),
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

  it('has an asynchronous twin with the same order', async () => {
    const storage = new MemoryStorage<string, string>(['a', 'b', 'c']);
    const node = new RaftNode<string, string>({ id: 'b', storage, random: ZERO });
    node.step({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 1, entries: [{ type: 'noop', index: 1, term: 1 }] });
    const log: string[] = [];
    const io = recordingIo(log, storage);
    const done = await runReadyAsync(node, {
      ...io,
      storage: {
        ...io.storage,
        sync: async () => {
          await Promise.resolve();
          log.push('fsync (async)');
        },
      },
    });
    expect(done).toBe(true);
    expect(log).toEqual(['persist 1 entries', 'persist hard state term=1', 'fsync (async)', 'send app-resp', 'apply 1']);
  });
});
