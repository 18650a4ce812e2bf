import { describe, expect, it } from 'vitest';
import { MemoryStorage, type Entry } from '../core/raft/index.js';
import { lastStateEntry } from './group-factory.js';

const log = (types: Array<'normal' | 'noop'>): MemoryStorage<string, never> => {
  const storage = new MemoryStorage<string, never>(['b1']);
  storage.append(types.map((type, i): Entry<string> => (type === 'normal' ? { index: i + 1, term: 1, type, data: `e${i + 1}` } : { index: i + 1, term: 1, type })));
  return storage;
};

describe('lastStateEntry (what a restarted group must apply again)', () => {
  it('is the last normal entry up to the commit: a new leader’s empty entries after it change nothing', () => {
    expect(lastStateEntry(log(['noop', 'normal', 'normal', 'noop', 'noop']), 0, 5)).toBe(3);
    expect(lastStateEntry(log(['noop', 'normal', 'normal', 'noop', 'noop']), 0, 2)).toBe(2);
  });

  it('is what is applied already when only empty entries follow it', () => {
    expect(lastStateEntry(log(['noop', 'normal', 'noop', 'noop']), 2, 4)).toBe(2);
    expect(lastStateEntry(log(['noop']), 0, 1)).toBe(0);
  });

  it('waits for the whole commit when it cannot tell (no log, or a commit beyond it)', () => {
    expect(lastStateEntry(undefined, 0, 7)).toBe(7);
    expect(lastStateEntry(log(['normal']), 0, 3)).toBe(3);
  });

  it('waits for the whole commit when the log was compacted past what is applied', () => {
    const storage = log(['normal', 'normal', 'noop', 'noop']);
    storage.setHardState({ term: 1, vote: null, commit: 4 });
    storage.createSnapshot(2, undefined as never);
    storage.compact(2);
    expect(lastStateEntry(storage, 0, 4)).toBe(4);
    expect(lastStateEntry(storage, 2, 4)).toBe(2);
  });
});
