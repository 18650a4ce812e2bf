/**
 * The two Raft log storages, for contract tests run over both: the record
 * file (`DurableRaftStorage`, layout `split` and the metadata group) and the
 * segment log (`SegmentRaftStorage`, layout `unified`), the latter also with
 * its hard state in a journal as a broker keeps it (`HardStateJournal`,
 * opened again with each open, as a restarted broker would). `path` is a
 * file for the first and a directory for the others.
 */
import type { NodeId } from '../../src/core/raft/index.js';
import { DurableRaftStorage, type RaftLogStorage, type RaftStorageOptions } from '../../src/storage/raft-storage.js';
import { HardStateJournal } from '../../src/storage/hard-state-journal.js';
import { SegmentRaftStorage } from '../../src/storage/segment-raft-storage.js';

export type OpenRaftStorage = <T, S>(path: string, voters: readonly NodeId[], options?: RaftStorageOptions) => Promise<RaftLogStorage<T, S>>;

export const RAFT_STORAGES: ReadonlyArray<{ name: string; open: OpenRaftStorage }> = [
  { name: 'record file', open: (path, voters, options) => DurableRaftStorage.open(path, voters, options) },
  { name: 'segment log', open: (path, voters, options) => SegmentRaftStorage.open(path, voters, options) },
  {
    name: 'segment log with a hard state journal',
    open: async (path, voters, options) => {
      const journal = await HardStateJournal.open(`${path}.hardstate`, options?.fs === undefined ? {} : { fs: options.fs });
      const storage = await SegmentRaftStorage.open<never, never>(path, voters, { ...(options ?? { fsync: 'always', fsyncIntervalMs: 1000 }), hardStates: { journal, key: 'group' } });
      // The journal is the broker's: closed with the storage here, which stands for the broker.
      const close = storage.close.bind(storage);
      storage.close = async () => {
        await close();
        await journal.close();
      };
      return storage;
    },
  },
];
