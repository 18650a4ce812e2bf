/**
 * The two Raft log storages, for contract tests run over both: the record
 * file (`DurableRaftStorage`, layout `split` and the metadata group) and the
 * segment log (`SegmentRaftStorage`, layout `unified`). `path` is a file for
 * the first and a directory for the second.
 */
import type { NodeId } from '../../src/core/raft/index.js';
import { DurableRaftStorage, type RaftLogStorage, type RaftStorageOptions } from '../../src/storage/raft-storage.js';
import { SegmentRaftStorage } from '../../src/storage/segment-raft-storage.js';

export type OpenRaftStorage = <T, S>(path: string, voters: readonly NodeId[], options?: RaftStorageOptions) => Promise<RaftLogStorage<T, S>>;

export const RAFT_STORAGES: ReadonlyArray<{ name: string; open: OpenRaftStorage }> = [
  { name: 'record file', open: (path, voters, options) => DurableRaftStorage.open(path, voters, options) },
  { name: 'segment log', open: (path, voters, options) => SegmentRaftStorage.open(path, voters, options) },
];
