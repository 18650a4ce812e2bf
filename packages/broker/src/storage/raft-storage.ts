import { MemoryStorage, type Entry, type HardState, type NodeId, type Snapshot, type Storage } from '../core/raft/index.js';
import { RecordFile } from './record-file.js';

/** Records of a Raft log file, replayed in order on open. */
type RaftRecord<T, S> =
  | { r: 'entries'; entries: Array<Entry<T>> }
  | { r: 'hard'; term: number; vote: NodeId | null; commit: number }
  | { r: 'snapshot'; snapshot: Snapshot<S> };

/**
 * A Raft group's stable storage: an in-memory copy the core reads, backed by
 * an append-only record file. Entries, hard state (term, vote) and snapshots
 * are written as records; `sync()` writes them out in one write and fsyncs,
 * so a broker that restarts never forgets a vote or an acknowledged entry.
 * Recovery replays the records: a later `entries` record overwrites a
 * conflicting suffix, exactly as the core's append did.
 */
export class DurableRaftStorage<T, S> {
  private constructor(
    readonly memory: MemoryStorage<T, S>,
    private readonly file: RecordFile | undefined,
  ) {}

  /** Opens (or creates) the log at `path`; `undefined` keeps it in memory only (tests, in-memory brokers). */
  static async open<T, S>(path: string | undefined, voters: readonly NodeId[]): Promise<DurableRaftStorage<T, S>> {
    const memory = new MemoryStorage<T, S>(voters);
    if (path === undefined) return new DurableRaftStorage(memory, undefined);
    const { file, recovered } = await RecordFile.open(path);
    for (const record of recovered.records as Array<RaftRecord<T, S>>) {
      if (record.r === 'entries') memory.append(record.entries);
      else if (record.r === 'hard') memory.setHardState({ term: record.term, vote: record.vote, commit: record.commit });
      else if (record.r === 'snapshot') memory.applySnapshot(record.snapshot);
    }
    return new DurableRaftStorage(memory, file);
  }

  /** The read side the core consumes. */
  get reader(): Storage<T, S> {
    return this.memory;
  }

  /** What was persisted before a restart. */
  get hardState(): HardState {
    return this.memory.getHardState();
  }

  applySnapshot(snapshot: Snapshot<S>): void {
    this.memory.applySnapshot(snapshot);
    this.file?.append({ r: 'snapshot', snapshot } satisfies RaftRecord<T, S>);
  }

  append(entries: readonly Entry<T>[]): void {
    this.memory.append(entries);
    this.file?.append({ r: 'entries', entries: [...entries] } satisfies RaftRecord<T, S>);
  }

  setHardState(hardState: HardState): void {
    this.memory.setHardState(hardState);
    this.file?.append({ r: 'hard', term: hardState.term, vote: hardState.vote, commit: hardState.commit } satisfies RaftRecord<T, S>);
  }

  /** Writes what was appended and fsyncs it (one write and one fsync for the whole batch). */
  async sync(): Promise<void> {
    await this.file?.flush(true);
  }

  async close(): Promise<void> {
    await this.file?.close();
  }
}
