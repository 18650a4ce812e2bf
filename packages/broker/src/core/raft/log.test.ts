import { describe, expect, it } from 'vitest';
import { RaftInvariantError, RaftLog } from './log.js';
import { MemoryStorage } from './storage.js';
import type { Entry } from './types.js';

const e = (index: number, term: number): Entry<string> => ({ type: 'normal', index, term, data: `v${index}/${term}` });
const entries = (terms: number[], from = 1): Entry<string>[] => terms.map((t, i) => e(from + i, t));

function logWith(stored: number[], unstable: number[] = []): RaftLog<string, string> {
  const storage = new MemoryStorage<string, string>(['a']);
  storage.append(entries(stored));
  const log = new RaftLog<string, string>(storage);
  if (unstable.length > 0) log.append(entries(unstable, stored.length + 1));
  return log;
}

describe('RaftLog', () => {
  it('reads terms and entries across stable storage and the unstable tail', () => {
    const log = logWith([1, 1, 2], [2, 3]);
    expect(log.firstIndex()).toBe(1);
    expect(log.lastIndex()).toBe(5);
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => log.term(i))).toEqual([0, 1, 1, 2, 2, 3, undefined]);
    expect(log.slice(2, 6, 10).map((x) => x.index)).toEqual([2, 3, 4, 5]);
    expect(log.slice(2, 6, 2).map((x) => x.index)).toEqual([2, 3]);
    expect(log.entriesFrom(4, 10)?.map((x) => x.index)).toEqual([4, 5]);
    expect(log.unstableEntries().map((x) => x.index)).toEqual([4, 5]);
  });

  it.each([
    // log terms, incoming entries (index/term from prevIndex+1), expected conflict index
    { terms: [1, 2, 3], incoming: [[1, 1], [2, 2]], expected: 0 },
    { terms: [1, 2, 3], incoming: [[2, 2], [3, 3], [4, 4]], expected: 4 },
    { terms: [1, 2, 3], incoming: [[2, 2], [3, 4]], expected: 3 },
    { terms: [1, 2, 3], incoming: [[1, 4], [2, 4]], expected: 1 },
    { terms: [], incoming: [[1, 1]], expected: 1 },
  ])('findConflict $terms vs $incoming → $expected', ({ terms, incoming, expected }) => {
    const log = logWith(terms);
    expect(log.findConflict(incoming.map(([i, t]) => e(i as number, t as number)))).toBe(expected);
  });

  it.each([
    // The follower's log; the leader probes (index, term); the hint is the last entry at or below index with term <= term.
    { terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], index: 10, term: 6, expected: { index: 10, term: 6 } },
    { terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], index: 10, term: 5, expected: { index: 7, term: 5 } },
    { terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], index: 10, term: 3, expected: { index: 3, term: 1 } },
    { terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], index: 12, term: 4, expected: { index: 5, term: 4 } },
    { terms: [2, 2, 2], index: 3, term: 1, expected: { index: 0, term: 0 } },
  ])('findConflictByTerm($index, $term) over $terms', ({ terms, index, term, expected }) => {
    expect(logWith(terms).findConflictByTerm(index, term)).toEqual(expected);
  });

  it('maybeAppend checks the previous entry, truncates conflicts and commits only what it verified', () => {
    const log = logWith([1, 1, 2]);
    expect(log.maybeAppend(3, 1, 3, [])).toBeUndefined(); // prev term mismatch
    expect(log.maybeAppend(5, 2, 3, [])).toBeUndefined(); // prev beyond the end
    expect(log.maybeAppend(2, 1, 10, [e(3, 3), e(4, 3)])).toBe(4);
    expect(log.term(3)).toBe(3);
    expect(log.committed).toBe(4); // min(leader commit 10, last new 4)
    expect(log.maybeAppend(1, 1, 10, [e(2, 1)])).toBe(2);
    expect(log.lastIndex()).toBe(4); // matching entries do not truncate
    expect(log.committed).toBe(4);
  });

  it('never overwrites committed entries', () => {
    const log = logWith([1, 1, 2]);
    log.commitTo(3);
    expect(() => log.maybeAppend(1, 1, 3, [e(2, 5)])).toThrow(RaftInvariantError);
    expect(() => log.commitTo(9)).toThrow(/beyond the last index/);
  });

  it('stableTo keeps entries rewritten since the Ready', () => {
    const storage = new MemoryStorage<string, string>(['a']);
    storage.append(entries([1]));
    const log = new RaftLog<string, string>(storage);
    log.append(entries([1, 1], 2));
    storage.append(log.unstableEntries());
    log.stableTo(3, 1);
    expect(log.unstableEntries()).toEqual([]);
    log.append([e(4, 2), e(5, 2)]);
    log.append([e(5, 3)]);
    log.stableTo(5, 2); // the entry persisted was replaced: stays unstable
    expect(log.unstableEntries().map((x) => `${x.index}/${x.term}`)).toEqual(['4/2', '5/3']);
  });

  it('hands out committed entries in bounded batches, none while a snapshot is pending', () => {
    const log = logWith([1, 1, 1, 1]);
    log.commitTo(4);
    expect(log.nextCommittedEntries(3).map((x) => x.index)).toEqual([1, 2, 3]);
    log.appliedTo(3);
    expect(log.nextCommittedEntries(3).map((x) => x.index)).toEqual([4]);
    log.restore({ meta: { index: 10, term: 2, conf: { voters: ['a'] } }, data: 'sm' });
    expect(log.hasNextCommittedEntries()).toBe(false);
    expect(log.committed).toBe(10);
    expect(log.firstIndex()).toBe(11);
    expect(log.lastIndex()).toBe(10);
    expect(log.term(10)).toBe(2);
    expect(log.term(4)).toBeUndefined();
  });

  it('starts committed at the stored snapshot', () => {
    const storage = new MemoryStorage<string, string>(['a']);
    storage.applySnapshot({ meta: { index: 7, term: 2, conf: { voters: ['a'] } }, data: 'sm' });
    const log = new RaftLog<string, string>(storage);
    expect(log.committed).toBe(7);
    expect(log.entriesFrom(3, 10)).toBeUndefined();
  });
});
