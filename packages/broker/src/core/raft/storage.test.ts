import { describe, expect, it } from 'vitest';
import { MemoryStorage, StorageError } from './storage.js';
import type { Entry } from './types.js';

const e = (index: number, term: number, data = `v${index}`): Entry<string> => ({ type: 'normal', index, term, data });

describe('MemoryStorage', () => {
  it('starts empty with the bootstrap configuration', () => {
    const s = new MemoryStorage<string, string>(['a', 'b', 'c']);
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(0);
    expect(s.term(0)).toBe(0);
    expect(s.term(1)).toBeUndefined();
    expect(s.initialState()).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, confState: { voters: ['a', 'b', 'c'] } });
    expect(s.snapshot()).toBeUndefined();
  });

  it('appends, truncating a conflicting tail', () => {
    const s = new MemoryStorage<string, string>();
    s.append([e(1, 1), e(2, 1), e(3, 1)]);
    s.append([e(2, 2, 'x')]);
    expect(s.lastIndex()).toBe(2);
    expect(s.entries(1, 3, 10).map((x) => x.term)).toEqual([1, 2]);
    expect(() => s.append([e(5, 2)])).toThrow(/gap/);
    expect(() => s.append([e(3, 2), e(5, 2)])).toThrow(/contiguous/);
  });

  it('limits and bounds entries()', () => {
    const s = new MemoryStorage<string, string>();
    s.append([e(1, 1), e(2, 1), e(3, 1)]);
    expect(s.entries(1, 4, 2)).toHaveLength(2);
    expect(() => s.entries(0, 2, 10)).toThrow(StorageError);
    expect(() => s.entries(2, 5, 10)).toThrow(StorageError);
  });

  it('snapshots committed entries and compacts up to the snapshot', () => {
    const s = new MemoryStorage<string, string>(['a']);
    s.append([e(1, 1), e(2, 1), e(3, 2), e(4, 2)]);
    expect(() => s.createSnapshot(3, 'sm@3')).toThrow(/not committed/);
    s.setHardState({ term: 2, vote: 'a', commit: 3 });
    const snap = s.createSnapshot(3, 'sm@3');
    expect(snap.meta).toEqual({ index: 3, term: 2, conf: { voters: ['a'] } });
    expect(() => s.compact(4)).toThrow(/beyond the latest snapshot/);
    s.compact(2);
    expect(s.firstIndex()).toBe(3);
    expect(s.term(2)).toBe(1);
    expect(s.term(1)).toBeUndefined();
    s.compact(3);
    expect(s.firstIndex()).toBe(4);
    expect(s.term(3)).toBe(2);
    expect(s.entries(4, 5, 10)).toEqual([e(4, 2)]);
    // Entries already compacted are skipped when appended again.
    s.append([e(3, 2), e(4, 2), e(5, 2)]);
    expect(s.lastIndex()).toBe(5);
    expect(() => s.createSnapshot(3, 'again')).toThrow(/not newer/);
  });

  it('replaces everything with an installed snapshot', () => {
    const s = new MemoryStorage<string, string>(['a', 'b', 'c']);
    s.append([e(1, 1), e(2, 1)]);
    s.applySnapshot({ meta: { index: 10, term: 3, conf: { voters: ['a', 'b', 'c'] } }, data: 'sm@10' });
    expect(s.firstIndex()).toBe(11);
    expect(s.lastIndex()).toBe(10);
    expect(s.term(10)).toBe(3);
    expect(s.snapshot()?.data).toBe('sm@10');
    expect(() => s.applySnapshot({ meta: { index: 5, term: 3, conf: { voters: ['a'] } }, data: 'old' })).toThrow(/not newer/);
  });

  it('clones independently', () => {
    const s = new MemoryStorage<string, string>();
    s.append([e(1, 1)]);
    const c = s.clone();
    s.append([e(2, 1)]);
    expect(c.lastIndex()).toBe(1);
    expect(s.lastIndex()).toBe(2);
  });

  it('a snapshot carries the configuration at its index, and a restart after compaction starts from it', () => {
    const s = new MemoryStorage<string, string>(['a', 'b', 'c']);
    s.append([
      { type: 'noop', index: 1, term: 1 },
      { type: 'conf', index: 2, term: 1, change: { type: 'add-learner', node: 'd' }, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } },
      { type: 'normal', index: 3, term: 1, data: 'x' },
      { type: 'conf', index: 4, term: 1, change: { type: 'promote', node: 'd' }, conf: { voters: ['a', 'b', 'c', 'd'], learners: [] } },
    ]);
    s.setHardState({ term: 1, vote: 'a', commit: 4 });
    expect(s.createSnapshot(1, 'sm@1').meta.conf).toEqual({ voters: ['a', 'b', 'c'] });
    expect(s.createSnapshot(3, 'sm@3').meta.conf).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    s.compact(3);
    // The entry that set it is gone: the stored configuration is the snapshot's.
    expect(s.initialState().confState).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    expect(s.createSnapshot(4, 'sm@4').meta.conf).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] });
    s.compact(4);
    expect(s.initialState().confState).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] });
  });
});
