/**
 * Log entries and storages for Raft unit tests that stage a story by hand
 * (with {@link ManualRaftCluster}): who holds which entries, in which term,
 * committed how far.
 */
import { MemoryStorage } from '../../src/core/raft/storage.js';
import type { ConfChange, ConfState, Entry } from '../../src/core/raft/types.js';
import type { ManualRaftCluster } from './manual-raft.js';

export const noop = (index: number, term: number): Entry<string> => ({ index, term, type: 'noop' });

export const value = (index: number, term: number, data: string): Entry<string> => ({ index, term, type: 'normal', data });

/** A configuration change of `node` at `index`, leaving `voters` and `learners`. */
export const conf = (index: number, term: number, type: ConfChange['type'], node: string, voters: string[], learners: string[] = []): Entry<string> => ({
  index,
  term,
  type: 'conf',
  change: { type, node },
  conf: (learners.length === 0 ? { voters } : { voters, learners }) satisfies ConfState,
});

/** A storage whose bootstrap voters are `voters`, holding `entries`, with term `term` (and `vote` in it) and commit `commit`. */
export function storageOf(voters: string[], entries: Entry<string>[], term: number, commit: number, vote: string | null = null): MemoryStorage<string, string> {
  const s = new MemoryStorage<string, string>(voters);
  if (entries.length > 0) s.append(entries);
  s.setHardState({ term, vote, commit });
  return s;
}

/** Whether `id`'s log holds `data` at `index`. */
export function holds(cl: ManualRaftCluster, id: string, index: number, data: string): boolean {
  const s = cl.storage(id);
  return s.lastIndex() >= index && s.entries(index, index + 1, 1).some((e) => e.type === 'normal' && e.data === data);
}
